"""The generated example CRM history the README's ``pipesim calibrate`` example reads.

Not real data: 1,500 deals of a fictitious seller drawn from a known model, in the
generic history format (``deals.csv``, ``events.csv``). Deals are created from
2016-01-01 to 2017-06-30 in four regions and pass Lead -> Demo -> Proposal -> Won;
each stage's time to advance and time to a loss are gamma laws of their own. The CRM
is exported at the start of 2017-07-01: what happens later is not in it (those deals
are open). ``datasets/example_crm/`` holds :func:`generate`'s output (a test checks it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2016-01-01")
EXPORT = pd.Timestamp("2017-07-01")
SEED = 2017
STAGES = ("Lead", "Demo", "Proposal")
CONVERSION = (0.55, 0.60, 0.50)
ADVANCE = ((14.0, 0.8), (21.0, 0.7), (30.0, 0.6))  # days: mean, cv
LOSS = ((20.0, 1.0), (35.0, 0.9), (45.0, 0.8))
REGIONS = {"North": (0.35, 14_000.0), "South": (0.25, 9_000.0), "East": (0.25, 11_000.0),
           "West": (0.15, 7_000.0)}  # fmt: skip


def _gamma(rng: np.random.Generator, law: tuple[float, float]) -> float:
    mean, cv = law
    shape = 1.0 / cv**2
    return float(rng.gamma(shape, mean / shape))


def generate(n: int = 1500, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The example history: ``deals`` and ``events`` tables in the generic format."""
    rng = np.random.default_rng(seed)
    days = (EXPORT - START).days
    # Creation gathers pace over the period (a growing business).
    created = np.sort(days * np.sqrt(rng.uniform(size=n)))
    region = rng.choice(list(REGIONS), n, p=[s for s, _ in REGIONS.values()])
    deals, events = [], []
    for i in range(n):
        deal_id = f"EX{i + 1:05d}"
        size = REGIONS[str(region[i])][1]
        open_amount = round(size * float(rng.lognormal(-0.18, 0.6)), -2) or 100.0
        t = float(created[i])
        status, stage, closed, amount = "open", STAGES[0], None, open_amount
        for k, name in enumerate(STAGES):
            events.append((deal_id, name, t))
            stage = name
            advances = rng.uniform() < CONVERSION[k]
            leave = t + _gamma(rng, ADVANCE[k] if advances else LOSS[k])
            if leave >= days:
                break  # still in this stage at the export
            if not advances:
                status, closed = "lost", leave
                break
            t = leave
            if k == len(STAGES) - 1:
                status, stage, closed = "won", "Won", leave
                amount = round(open_amount * float(rng.lognormal(-0.005, 0.1)), -2)
        deals.append(
            {
                "deal_id": deal_id,
                "created_at": _day(created[i]),
                "stage": stage,
                "status": status,
                "closed_at": None if closed is None else _day(closed),
                "amount": amount,
                "open_amount": open_amount,
                "region": region[i],
            }
        )
    ev = pd.DataFrame(events, columns=["deal_id", "stage", "t"])
    ev["entered_at"] = [_day(t) for t in ev["t"]]
    return pd.DataFrame(deals), ev[["deal_id", "stage", "entered_at"]]


def _day(t: float) -> str:
    return (START + pd.Timedelta(days=float(t))).strftime("%Y-%m-%d")
