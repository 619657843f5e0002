"""Synthetic CRM histories whose stated close dates are informative (a known slippage truth).

One stage, Offer. Deals are created at ``per_day`` a day (Poisson); a new deal states a
close date a gamma time after its creation (``first`` = (mean, cv) days). Each stated
date opens a *round*; in round k (k = pushes so far, the last value repeating):

- with probability ``win[k]`` the deal is won on the stated date plus a lateness
  L = ``late_shift`` + Gamma(``late_mean``, ``late_cv``) (won early when negative);
- with probability ``push[k]`` the rep pushes the date ``gap`` days later, recording the
  change ``delay`` (uniform 0..``delay`` days) after the old date passed;
- else the deal is lost within ``delay`` days after the date passed.

So P(won at all | round k) = W_k = win[k] + push[k] W_(k+1), falling with each push.
Everything up to START + ``days + after`` is in the rows (the future a backtest
scores); the export date is START + ``days``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import optimize, stats

START = pd.Timestamp("2020-01-01")


@dataclasses.dataclass(frozen=True)
class Truth:
    """The generator's law."""

    win: tuple[float, ...] = (0.45, 0.30, 0.20, 0.12)
    push: tuple[float, ...] = (0.35, 0.35, 0.35, 0.30)
    gap: float = 30.0
    delay: float = 7.0
    first: tuple[float, float] = (60.0, 1.0)
    late_shift: float = -5.0
    late_mean: float = 10.0
    late_cv: float = 0.8

    def p(self, k: int, table: tuple[float, ...]) -> float:
        return table[min(k, len(table) - 1)]

    def lateness(self) -> stats.rv_continuous:
        shape = 1.0 / self.late_cv**2
        return stats.gamma(shape, loc=self.late_shift, scale=self.late_mean / shape)

    def w(self, k: int) -> float:
        """P(won at all) at the start of round k."""
        last = len(self.win) - 1
        out = self.p(last, self.win) / (1.0 - self.p(last, self.push))
        for j in range(last - 1, k - 1, -1):
            out = self.win[j] + self.push[j] * out
        return out

    def row_parts(self, k: int, x: float) -> tuple[float, float, float]:
        """A deal open at x = snapshot minus stated date (<= 0) in round k: the weights
        of (won this round, won later, lost or pushed) among the deals still open."""
        s = float(self.lateness().sf(x))
        a, b = self.p(k, self.win), self.p(k, self.push)
        now, later = a * s, b * self.w(k + 1)
        total = a * s + b + (1.0 - a - b)
        return now / total, later / total, total

    def p_row(self, k: int, x: float) -> float:
        """P(won at all) of a deal open, in round k, x days from its stated date (x <= 0)."""
        now, later, _ = self.row_parts(k, x)
        return now + later

    def late_cdf_row(self, k: int, x: float, days: float) -> float:
        """P(won, lateness <= days | open in round k at x), lateness from the row's date."""
        law = self.lateness()
        a = self.p(k, self.win)
        s = float(law.sf(x))
        total = a * s + self.p(k, self.push) + (1.0 - a - self.p(k, self.push))
        out = a * max(float(law.cdf(days)) - float(law.cdf(x)), 0.0)
        reach = self.p(k, self.push)  # P(reaching round k + j)
        for j in range(1, 40):
            out += reach * self.p(k + j, self.win) * float(law.cdf(days - j * self.gap))
            reach *= self.p(k + j, self.push)
        return out / total


def truth_rows(truth: Truth, pushes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(won at all) of each snapshot row (pushes so far, x = snapshot minus stated date)."""
    k = np.asarray(pushes, dtype=np.int64)
    s = truth.lateness().sf(x)
    a, b = _table(truth.win, k), _table(truth.push, k)
    w_next = np.array([truth.w(int(j) + 1) for j in k])
    return (a * s + b * w_next) / (1.0 - a * (1.0 - s))


def _table(values: tuple[float, ...], k: np.ndarray) -> np.ndarray:
    return np.asarray(values)[np.minimum(k, len(values) - 1)]


def pooled_late_cdf(truth: Truth, pushes: np.ndarray, x: np.ndarray, days: float) -> float:
    """P(lateness <= days | won) over the wins from these rows, pooled as the fit pools them.

    Each row's wins weigh its P(won at all); the lateness is measured from its stated
    date (a win j rounds later is j ``gap`` days later, plus its own lateness).
    """
    law = truth.lateness()
    k = np.asarray(pushes, dtype=np.int64)
    a = _table(truth.win, k)
    total = 1.0 - a * law.sf(x)  # the deals still open: a S(x) + b + (1 - a - b)
    below = a * np.maximum(law.cdf(days) - law.cdf(x), 0.0)
    mass = a * law.sf(x)
    reach = _table(truth.push, k)
    for j in range(1, 40):
        win_j = reach * _table(truth.win, k + j)
        below = below + win_j * law.cdf(days - j * truth.gap)
        mass = mass + win_j
        reach = reach * _table(truth.push, k + j)
    return float((below / total).sum() / (mass / total).sum())


def late_quantile(truth: Truth, pushes: np.ndarray, x: np.ndarray, level: float) -> float:
    """The ``level`` quantile of :func:`pooled_late_cdf`."""

    def f(days: float) -> float:
        return pooled_late_cdf(truth, pushes, x, days) - level

    return float(optimize.brentq(f, -100.0, 1000.0, xtol=1e-4))


def late_density(truth: Truth, pushes: np.ndarray, x: np.ndarray, days: float) -> float:
    """The density of :func:`pooled_late_cdf` at ``days`` (a quantile's standard error)."""
    h = 0.5
    return (
        pooled_late_cdf(truth, pushes, x, days + h) - pooled_late_cdf(truth, pushes, x, days - h)
    ) / (2 * h)


def close_date_history(
    seed: int = 1,
    days: int = 730,
    after: int = 120,
    per_day: float = 4.0,
    amount: float = 1000.0,
    truth: Truth = Truth(),
):
    """(deals, close-date changes, export date) of one generated history."""
    rng = np.random.default_rng(seed)
    span = days + after
    n = rng.poisson(per_day * span)
    created = np.sort(rng.uniform(0, span, n))
    shape = 1.0 / truth.first[1] ** 2
    late = truth.lateness()
    deals, changes = [], []
    for i, c in enumerate(created):
        stated = c + rng.gamma(shape, truth.first[0] / shape)
        changes.append((f"c{i}", c, stated))
        k = 0
        while True:
            u = rng.uniform()
            a, b = truth.p(k, truth.win), truth.p(k, truth.push)
            if u < a:
                status, end = "won", max(stated + late.rvs(random_state=rng), c)
                break
            if u < a + b:
                at = stated + rng.uniform(0, truth.delay)
                stated += truth.gap
                changes.append((f"c{i}", at, stated))
                k += 1
                continue
            status, end = "lost", stated + rng.uniform(0, truth.delay)
            break
        closed = end < span
        deals.append(
            {
                "deal_id": f"c{i}",
                "created_at": _day(c),
                "stage": "Won" if closed and status == "won" else "Offer",
                "status": status if closed else "open",
                "closed_at": _day(end) if closed else None,
                "amount": amount,
            }
        )
    ch = pd.DataFrame(changes, columns=["deal_id", "t", "s"])
    ch = ch[ch["t"] < span]
    table = pd.DataFrame(
        {
            "deal_id": ch["deal_id"],
            "changed_at": [_day(t) for t in ch["t"]],
            "close_date": [_day(s) for s in ch["s"]],
        }
    )
    return pd.DataFrame(deals), table, START + pd.Timedelta(days=days)


def _day(t: float) -> str:
    return (START + pd.Timedelta(days=float(np.floor(t)))).strftime("%Y-%m-%d")
