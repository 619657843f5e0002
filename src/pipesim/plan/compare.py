"""compare(): the base scenario and its lever variants, side by side on common random numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.plan import common_random_numbers
from pipesim.plan.levers import Lever, apply_levers, gather_variants
from pipesim.plan.plan_result import PlanResult, ScenarioLike, as_scenario, base_metadata, check_run
from pipesim.progress import Progress
from pipesim.scenario.scenario import Scenario

COMPARE_COLUMNS = (
    "variant",
    "mean",
    "p10",
    "p50",
    "p90",
    "delta_mean",
    "delta_p10",
    "delta_p50",
    "delta_p90",
    "p_better",
)


def levers_table(scenario: ScenarioLike) -> tuple[pd.DataFrame | None, str]:
    """The scenario folder's levers.parquet, if it has one, and its path."""
    from pipesim.io import parquet

    if scenario is None or not isinstance(scenario, str | os.PathLike):
        return None, "levers.parquet"
    path = Path(scenario) / "levers.parquet"
    if not path.is_file():
        return None, str(path)
    return parquet.load_table(path), str(path)


def total_revenue(revenue: np.ndarray, months: int | None = None) -> np.ndarray:
    """Whole-book revenue of each trial over the first ``months`` periods (all by default)."""
    return revenue[:, : months if months else revenue.shape[1], 0].sum(axis=1)


def _stage_columns(base: Scenario, variants: Sequence[Scenario]) -> tuple[str, ...]:
    """The stages table's columns the base is run with next to these variants."""
    aligned = common_random_numbers.align_stage_columns([base, *variants])
    return tuple(map(str, aligned[0].stages.columns))


def compare_totals(totals: dict[str, np.ndarray]) -> pd.DataFrame:
    """compare.parquet's rows from per-trial totals ({variant: array}, the base first)."""
    names = list(totals)
    base = totals[names[0]]
    rows = []
    for name in names:
        x = totals[name]
        d = x - base
        q = np.quantile(x, (0.1, 0.5, 0.9))
        dq = np.quantile(d, (0.1, 0.5, 0.9))
        rows.append(
            {
                "variant": name,
                "mean": float(x.mean()),
                "p10": float(q[0]),
                "p50": float(q[1]),
                "p90": float(q[2]),
                "delta_mean": float(d.mean()),
                "delta_p10": float(dq[0]),
                "delta_p50": float(dq[1]),
                "delta_p90": float(dq[2]),
                "p_better": float((x > base).mean()),
                "delta_se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0,
            }
        )
    return pd.DataFrame(rows)


def compare(
    scenario: ScenarioLike = None,
    levers: Sequence[str | Lever] = (),
    *,
    trials: int = 10_000,
    seed: int = 0,
    levers_frame: pd.DataFrame | None = None,
    progress: bool = False,
    memo: dict[tuple[object, ...], np.ndarray] | None = None,
) -> PlanResult:
    """Run the base scenario and every lever variant on common random numbers.

    Parameters
    ----------
    scenario : Scenario or path, optional
        A scenario or its folder (default: the bundled demo). A folder's
        ``levers.parquet`` adds its variants.
    levers : list of str or Lever
        Command-line levers (``"conversion:Visited+0.05@region=North"``), one variant each.
    trials, seed : int
        Monte Carlo settings; every variant uses the same seed (common random numbers).
    levers_frame : DataFrame, optional
        A levers table given directly (instead of the folder's ``levers.parquet``).
    progress : bool
        Show a bar counting the trials of every run on stderr (after ~2 s, terminals only).
    memo : dict, optional
        Runs kept between calls on one scenario (the planning page's): the base's totals
        and, for lead-only variants, the open book's rows, keyed by what they depend on
        (trials, seed, the stage columns the variants give the base). The same bits as
        without it; pass a new dict for another scenario.

    Returns
    -------
    PlanResult
        ``table`` (compare.parquet): one row per variant, the base first: ``variant``,
        ``mean``, ``p10``, ``p50``, ``p90`` of revenue over the horizon, the paired
        difference to the base (``delta_mean``, ``delta_p10``, ``delta_p50``,
        ``delta_p90``, and ``delta_se``, the Monte Carlo standard error of
        ``delta_mean``) and ``p_better`` = P(variant > base).
    """
    table, source = (
        (levers_frame, "levers table") if levers_frame is not None else levers_table(scenario)
    )
    sc = as_scenario(scenario)
    check_run(trials, None, sc)
    variants = gather_variants(sc, levers, table, source)
    scenarios = [apply_levers(sc, lv) for lv in variants.values()]
    pb, pvs = common_random_numbers.prepare_pair(sc, scenarios)
    # Variants that move only new leads keep the base's open deals: simulated once.
    leads_only = [
        bool(lvs) and all(lv.quantity == "leads" for lv in lvs) for lvs in variants.values()
    ]
    memo = {} if memo is None else memo
    key = (trials, seed, _stage_columns(sc, scenarios))
    with Progress((1 + len(pvs)) * trials, enabled=progress, desc="compare") as bar:
        book = None
        if any(leads_only):
            if ("book", *key) not in memo:
                rev, won = common_random_numbers.open_book(pb, trials, seed)
                memo["book", *key], memo["book_won", *key] = rev, won
            book = (memo["book", *key], memo["book_won", *key])
        if ("base", *key) not in memo:
            if book is None:
                base_rev = common_random_numbers.run(pb, trials, seed, bar)[0]
            else:
                base_rev = common_random_numbers.with_leads(book, pb, seed, bar)[0]
            memo["base", *key] = total_revenue(base_rev)
        totals = {"base": memo["base", *key]}
        for name, pv, reuse in zip(variants, pvs, leads_only, strict=True):
            if book is not None and reuse:
                rev = common_random_numbers.with_leads(book, pv, seed, bar)[0]
            else:
                rev = common_random_numbers.run(pv, trials, seed, bar)[0]
            totals[name] = total_revenue(rev)
    frame = compare_totals(totals)
    meta = base_metadata("compare", sc, trials, seed)
    meta["variants"] = " | ".join(
        f"{name}: {'; '.join(lv.label() for lv in lvs)}" for name, lvs in variants.items()
    )
    messages = (
        [] if variants else ["no levers given: only the base was run (add a lever to compare)."]
    )
    result = PlanResult("compare", sc, {"compare": frame}, meta, messages)
    from pipesim.plan.printed import compare_report

    result.text = compare_report(result)
    return result
