"""Synthetic CRM histories drawn from known parameters (the calibration tests' ground truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2020-01-01")


def gamma(rng, mean, cv, size):
    shape = 1.0 / cv**2
    return rng.gamma(shape, mean / shape, size)


def pipeline_history(
    seed=1,
    n=3000,
    days=730,
    conversion=(0.6, 0.5, 0.7),
    dwell=(10.0, 20.0, 15.0),
    cv=0.8,
    amount=1000.0,
    segments=None,
):
    """A funnel that follows pipesim's model: gamma dwell, then advance with p, else lost.

    Deals are created uniformly over ``days`` days from START; the history is
    exported at START + days (events and closes after that are not seen).
    Returns (deals, events, export date).
    """
    rng = np.random.default_rng(seed)
    created = np.sort(rng.uniform(0, days, n))
    export = days
    deals, events = [], []
    for i, c in enumerate(created):
        t = c
        status, stage, closed = "open", "S1", None
        for s, (p, d) in enumerate(zip(conversion, dwell, strict=True)):
            name = f"S{s + 1}"
            events.append((f"d{i}", name, t))
            stage = name
            t_exit = t + gamma(rng, d, cv, 1)[0]
            if t_exit >= export:
                break
            if rng.uniform() >= p:
                status, closed = "lost", t_exit
                break
            t = t_exit
            if s == len(conversion) - 1:
                status, stage, closed = "won", "Won", t_exit
        row = {
            "deal_id": f"d{i}",
            "created_at": (START + pd.to_timedelta(c, unit="D")).strftime("%Y-%m-%d"),
            "stage": stage,
            "status": status,
            "closed_at": None
            if closed is None
            else (START + pd.to_timedelta(closed, unit="D")).strftime("%Y-%m-%d"),
            "amount": amount,
        }
        if segments:
            row["region"] = segments[i % len(segments)]
        deals.append(row)
    ev = pd.DataFrame(events, columns=["deal_id", "stage", "t"])
    ev = ev[ev["t"] < export]
    ev["entered_at"] = (START + pd.to_timedelta(ev["t"], unit="D")).dt.strftime("%Y-%m-%d")
    export_date = START + pd.Timedelta(days=export)
    return pd.DataFrame(deals), ev[["deal_id", "stage", "entered_at"]], export_date


def young_history(seed=2, n=6000, p=0.5, adv=(40.0, 0.4), lost=(8.0, 0.5), days=120):
    """One stage whose losses close fast and wins slowly; a growing CRM (more recent deals).

    Creation times have density rising linearly over ``days`` (a CRM filling
    up), so about a third of the deals are still open at the export date.
    """
    rng = np.random.default_rng(seed)
    created = days * np.sqrt(rng.uniform(size=n))
    win = rng.uniform(size=n) < p
    dur = np.where(win, gamma(rng, adv[0], adv[1], n), gamma(rng, lost[0], lost[1], n))
    end = created + dur
    closed = end < days
    status = np.where(~closed, "open", np.where(win, "won", "lost"))
    to_date = lambda x: (START + pd.to_timedelta(x, unit="D")).strftime("%Y-%m-%d")  # noqa: E731
    deals = pd.DataFrame(
        {
            "deal_id": np.arange(n),
            "created_at": [to_date(x) for x in created],
            "stage": np.where(status == "won", "Won", "Lead"),
            "status": status,
            "closed_at": [to_date(x) if c else None for x, c in zip(end, closed, strict=True)],
            "amount": 100.0,
        }
    )
    return deals, START + pd.Timedelta(days=days)


def two_clock_history(
    seed=1,
    days=365,
    per_day=10.0,
    p=0.4,
    adv=("gamma", 30.0, 0.7),
    loss=("gamma", 90.0, 1.0),
    after=0,
    amount=(5_000.0, 0.5),
    recorded=1.0,
):
    """One stage, Offer, whose wins and losses run on their own clocks (a known truth).

    Deals are created at ``per_day`` a day (Poisson) over ``days + after`` days; each is
    destined to be won (probability ``p``, after a time from ``adv``) or lost (after a
    time from ``loss``; ``("never", inf, 1)``: losses are never recorded, the deal stays
    open); of the losses only a share ``recorded`` is recorded, the other deals are
    abandoned and stay open. Laws are ``(dist, mean, cv)`` with dist gamma or
    lognormal. The export date is
    START + ``days``; the rows carry everything up to START + ``days + after`` (the
    future a backtest scores against). Returns (deals, export date).
    """
    rng = np.random.default_rng(seed)
    span = days + after
    n = rng.poisson(per_day * span)
    created = np.sort(rng.uniform(0, span, n))
    win = rng.uniform(size=n) < p
    t = np.where(win, draw(rng, adv, n), draw(rng, loss, n))
    abandoned = ~win & (rng.uniform(size=n) >= recorded)
    t = np.where(abandoned, np.inf, t)
    end = created + t
    closed = end < span
    status = np.where(~closed, "open", np.where(win, "won", "lost"))
    value = np.round(rng.lognormal(np.log(amount[0]), amount[1], n), 2)
    stamp = START + pd.to_timedelta(created, unit="D")
    close = START + pd.to_timedelta(np.where(closed, end, 0.0), unit="D")
    deals = pd.DataFrame(
        {
            "deal_id": [f"o{i}" for i in range(n)],
            "created_at": stamp.strftime("%Y-%m-%d"),
            "stage": np.where(status == "won", "Won", "Offer"),
            "status": status,
            "closed_at": np.where(closed, close.strftime("%Y-%m-%d"), None),
            "amount": value,
        }
    )
    return deals, START + pd.Timedelta(days=days)


def draw(rng, law, size):
    """Times from a law ``(dist, mean, cv)``: gamma, lognormal or never (inf)."""
    dist, mean, cv = law
    if dist == "never" or np.isinf(mean):
        return np.full(size, np.inf)
    if dist == "gamma":
        return gamma(rng, mean, cv, size)
    s2 = np.log1p(cv**2)
    return rng.lognormal(np.log(mean) - s2 / 2, np.sqrt(s2), size)


MONTH = 365.25 / 12


def market_history(
    seed=1,
    days=365,
    after=365,
    regions=(("North", 6.0, 0.45), ("South", 4.0, 0.30)),
    adv=("gamma", 30.0, 0.7),
    loss=("gamma", 45.0, 1.0),
    amount=(5_000.0, 0.5),
    growth=0.0,
    shock_sd=0.0,
    region_shock_sd=0.0,
    change_at=None,
    change=1.0,
    quarter_end=0.0,
    leads_shock_sd=0.0,
    region_leads_shock_sd=0.0,
    slow_month=None,
    shock_rho=0.0,
):
    """One stage, Offer, sold in regions; the market moves in known ways (the truth).

    ``regions``: (name, deals a day at the start, win probability). Over ``days +
    after`` days from START: creations grow by ``growth`` a month (compounded);
    a deal's odds of winning (logit scale) move by the shock of its creation month,
    one shared by every region (sd ``shock_sd``) plus one per region (sd
    ``region_shock_sd``); deals created from day ``change_at`` on win with the
    probability times ``change``; each month's creations are Poisson with the rate
    times exp(shock - sd^2 / 2), a shock on the log scale shared by every region (sd
    ``leads_shock_sd``) plus one per region (sd ``region_leads_shock_sd``); with
    ``quarter_end`` > 0 that share of the wins closing in the first two months of a
    quarter slip to its last two weeks (the quarter-end rush); with ``slow_month`` =
    (m, share) that share of the wins due in calendar month m slip to the first two weeks
    of the next month (a December that stops at Christmas); with ``shock_rho`` > 0 the
    shared odds shock is a stationary AR(1) path of that persistence (same sd). Times to
    a win and to a loss from ``adv`` and ``loss``. The export date is START + ``days``;
    the rows hold everything up to START + ``days + after`` (the future a backtest
    scores). Returns (deals, export date).
    """
    rng = np.random.default_rng(seed)
    span = days + after
    n_months = int(np.ceil(span / MONTH)) + 1
    shared = rng.normal(0.0, shock_sd, n_months) if shock_sd else np.zeros(n_months)
    for k in range(1, n_months if shock_rho else 0):  # a persistent (AR(1)) market
        shared[k] = shock_rho * shared[k - 1] + np.sqrt(1 - shock_rho**2) * shared[k]
    lead_sd = np.hypot(leads_shock_sd, region_leads_shock_sd)
    lead_shared = rng.normal(0.0, leads_shock_sd, n_months) if lead_sd else 0.0
    frames = []
    for r, (name, per_day, p) in enumerate(regions):
        # Creations: a Poisson process of rate per_day * (1 + growth)^(t / MONTH).
        if lead_sd:  # month by month, each month's rate moved by its shocks
            own_leads = rng.normal(0.0, region_leads_shock_sd, n_months)
            move = np.exp(lead_shared + own_leads - lead_sd**2 / 2)
            lo = np.arange(n_months) * MONTH
            length = np.clip(span - lo, 0.0, MONTH)
            count = rng.poisson(per_day * (1 + growth) ** np.arange(n_months) * length * move)
            created = np.sort(np.repeat(lo, count) + rng.uniform(0, np.repeat(length, count)))
        elif growth:
            g = np.log1p(growth) / MONTH
            total = per_day * np.expm1(g * span) / g
            u = rng.uniform(size=rng.poisson(total))
            created = np.sort(np.log1p(u * np.expm1(g * span)) / g)
        else:
            created = np.sort(rng.uniform(0, span, rng.poisson(per_day * span)))
        n = created.size
        month = (created // MONTH).astype(int)
        own = rng.normal(0.0, region_shock_sd, n_months) if region_shock_sd else 0.0
        logit = np.log(p / (1 - p)) + (shared + own)[month]
        q = 1.0 / (1.0 + np.exp(-logit))
        if change_at is not None:
            q = np.where(created >= change_at, np.clip(q * change, 0.0, 1.0), q)
        win = rng.uniform(size=n) < q
        t = np.where(win, draw(rng, adv, n), draw(rng, loss, n))
        end = created + t
        if quarter_end:
            stamp = START + pd.to_timedelta(end, unit="D")
            q_end = (stamp.to_period("Q").end_time.normalize() - START).days.to_numpy()
            early = stamp.month.to_numpy() % 3 != 0  # first two months of a quarter
            slip = win & early & (rng.uniform(size=n) < quarter_end)
            end = np.where(slip, q_end - rng.uniform(0, 14, n), end)
        if slow_month is not None:
            stamp = START + pd.to_timedelta(end, unit="D")
            nxt = (stamp.to_period("M") + 1).start_time
            slip = win & (stamp.month.to_numpy() == slow_month[0])
            slip &= rng.uniform(size=n) < slow_month[1]
            end = np.where(slip, (nxt - START).days.to_numpy() + rng.uniform(0, 14, n), end)
        frames.append(
            pd.DataFrame(
                {
                    "deal_id": [f"{name[:1]}{i}" for i in range(n)],
                    "created": created,
                    "end": end,
                    "win": win,
                    "region": name,
                    "amount": np.round(rng.lognormal(np.log(amount[0]), amount[1], n), 2),
                    "seq": r,
                }
            )
        )
    d = pd.concat(frames, ignore_index=True).sort_values(["created", "seq"], kind="stable")
    closed = (d["end"] < span).to_numpy()
    status = np.where(~closed, "open", np.where(d["win"], "won", "lost"))
    stamp = START + pd.to_timedelta(d["created"].to_numpy(), unit="D")
    close = START + pd.to_timedelta(np.where(closed, d["end"], 0.0), unit="D")
    deals = pd.DataFrame(
        {
            "deal_id": d["deal_id"].to_numpy(),
            "created_at": stamp.strftime("%Y-%m-%d"),
            "stage": np.where(status == "won", "Won", "Offer"),
            "status": status,
            "closed_at": np.where(closed, close.strftime("%Y-%m-%d"), None),
            "amount": d["amount"].to_numpy(),
            "region": d["region"].to_numpy(),
        }
    )
    return deals, START + pd.Timedelta(days=days)
