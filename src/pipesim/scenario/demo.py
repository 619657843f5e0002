"""The bundled demo scenario, and the code that writes it.

The four stages of the source text, a book of open deals with ``region`` and
``product_line``, and twelve months of new leads per segment. ``pipesim init DIR``
writes it; ``scenarios/demo/`` in the repository (and in the installed package) is
exactly its output.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.scenario.calendar import add_months

AS_OF = dt.date(2027, 1, 1)
REGIONS = {"North": 1.2, "South": 1.0, "East": 0.8, "West": 0.6}
PRODUCTS = {"Hardware": (0.40, 12_000.0), "Software": (0.35, 8_000.0), "Services": (0.25, 5_000.0)}

README = """\
# pipesim demo scenario

A fictitious B2B seller forecasting 12 months from {as_of}. Open any file with
pandas (`pd.read_parquet("stages.parquet")`); edit it and run `pipesim run .`.

- `stages.parquet`: the funnel, top first: Prospect -> Qualified -> Visited -> Offer
  (Won is the outcome after Offer). `conversion` is the probability of reaching the
  next stage, `dwell_days` the mean days spent in the stage, `dwell_cv` its
  coefficient of variation (1 = exponential), `dwell_dist` gamma or lognormal,
  `value_cv` the spread of the won value around the amount, `conversion_n` the
  number of deals the conversion was measured on (each trial draws the conversion
  from its uncertainty). The row with `region` = South overrides the conversion of
  Visited for southern deals and leads.
- `deals.parquet`: {deals:,} open deals: `deal_id`, `stage`, `amount`, `days_in_stage`,
  and the segment columns `region` and `product_line`.
- `arrivals.parquet`: expected new leads per month (`period`), region and product
  line: `leads`, mean `amount`, `amount_cv`, and `leads_n` (the evidence behind
  the lead rate).
- `scenario.parquet`: `as_of`, `horizon_months`, `name`, `currency`.
"""


def demo_tables(n_deals: int = 3_000, seed: int = 2027) -> dict[str, pd.DataFrame]:
    """Build the demo scenario's tables (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    stages = pd.DataFrame(
        {
            "stage": ["Prospect", "Qualified", "Visited", "Offer", "Visited"],
            "conversion": [0.30, 0.50, 0.55, 0.60, 0.45],
            "dwell_days": [21.0, 30.0, 25.0, 20.0, None],
            "dwell_cv": [0.8, 0.7, 0.6, 0.5, None],
            "dwell_dist": ["gamma", "gamma", "gamma", "lognormal", None],
            "value_cv": [0.0, 0.0, 0.0, 0.15, None],
            "conversion_n": [400.0, 200.0, 120.0, 80.0, 40.0],
            "region": [None, None, None, None, "South"],
        }
    )
    funnel = ["Prospect", "Qualified", "Visited", "Offer"]
    region = rng.choice(list(REGIONS), n_deals, p=np.array(list(REGIONS.values())) / 3.6)
    product = rng.choice(list(PRODUCTS), n_deals, p=[s for s, _ in PRODUCTS.values()])
    stage = rng.choice(funnel, n_deals, p=[0.4, 0.3, 0.2, 0.1])
    mean = np.array([PRODUCTS[p][1] for p in product])
    sigma = np.sqrt(np.log1p(0.6**2))
    amount = np.round(mean * np.exp(sigma * rng.standard_normal(n_deals) - sigma**2 / 2), -2)
    dwell = dict(zip(funnel, [21.0, 30.0, 25.0, 20.0], strict=True))
    age = np.floor(rng.uniform(0, 1.5, n_deals) * np.array([dwell[s] for s in stage]))
    deals = pd.DataFrame(
        {
            "deal_id": [f"D{i:05d}" for i in range(1, n_deals + 1)],
            "stage": stage,
            "amount": amount,
            "days_in_stage": age,
            "region": region,
            "product_line": product,
        }
    )
    rows = []
    for k in range(12):
        month = add_months(AS_OF, k)
        season = 1.0 + 0.15 * np.sin(2 * np.pi * (month.month - 3) / 12)
        for reg, weight in REGIONS.items():
            for prod, (share, size) in PRODUCTS.items():
                rows.append(
                    {
                        "period": month.strftime("%Y-%m"),
                        "leads": round(330.0 * weight * share * season, 1),
                        "amount": size,
                        "amount_cv": 0.6,
                        "leads_n": 24.0,
                        "region": reg,
                        "product_line": prod,
                    }
                )
    arrivals = pd.DataFrame(rows)
    scenario = pd.DataFrame(
        {"as_of": [AS_OF], "horizon_months": [12], "name": ["demo"], "currency": ["EUR"]}
    )
    return {"stages": stages, "deals": deals, "arrivals": arrivals, "scenario": scenario}


def demo_readme(tables: dict[str, pd.DataFrame]) -> str:
    """The README written beside the demo's tables."""
    return README.format(as_of=AS_OF.isoformat(), deals=len(tables["deals"]))


def demo_path() -> Path:
    """The bundled demo folder: inside the installed package, else the source checkout's."""
    packaged = Path(str(resources.files("pipesim"))) / "scenarios" / "demo"
    if (packaged / "stages.parquet").is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "scenarios" / "demo"
