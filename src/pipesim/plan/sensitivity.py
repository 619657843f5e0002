"""sensitivity(): a tornado of the inputs, each moved down and up by a step, on common numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.plan import common_random_numbers
from pipesim.plan.compare import total_revenue
from pipesim.plan.levers import Lever, apply_lever
from pipesim.plan.plan_result import PlanResult, ScenarioLike, as_scenario, base_metadata, check_run
from pipesim.progress import Progress
from pipesim.scenario.scenario import Scenario


def _inputs(sc: Scenario, step: float) -> list[tuple[str, str, str | None, float, float]]:
    """(input, quantity, stage, down factor, up factor) for every input of the tornado."""
    out: list[tuple[str, str, str | None, float, float]] = []
    stages = sc.stages
    for stage in sc.funnel:
        top = float(stages.loc[stages["stage"] == stage, "conversion"].max())
        up = min(1.0 + step, 1.0 / top) if top > 0 else 1.0 + step
        out.append((f"conversion {stage}", "conversion", stage, 1.0 - step, up))
    for stage in sc.funnel:
        out.append((f"dwell {stage}", "dwell", stage, 1.0 - step, 1.0 + step))
    if "loss_days" in stages.columns:
        for stage in sc.funnel:
            if stages.loc[stages["stage"] == stage, "loss_days"].notna().any():
                out.append((f"loss {stage}", "loss", stage, 1.0 - step, 1.0 + step))
    if len(sc.arrivals):
        out.append(("leads", "leads", None, 1.0 - step, 1.0 + step))
    out.append(("amount", "amount", None, 1.0 - step, 1.0 + step))
    return out


PAIRED_SHARE = 4  # the moved inputs run on a quarter of the base's trials ...
PAIRED_MIN = 2_000  # ... and at least this many (all of them below)
_BOOTSTRAPS = 200  # resamples of the paired trials for each swing's standard error
_BOOTSTRAP_KEY = 0x5E45  # the resampling's own stream, apart from the simulation's


def paired_trials(trials: int) -> int:
    """The trials each moved input runs on: the base's first quarter, at least 2,000."""
    return min(trials, max(PAIRED_MIN, trials // PAIRED_SHARE))


def swing_se(lo: np.ndarray, hi: np.ndarray, seed: int) -> float:
    """Bootstrap standard error of P50(hi) - P50(lo), the trials resampled in pairs."""
    rng = np.random.default_rng([seed, _BOOTSTRAP_KEY])  # the same resamples for every input
    diffs = []
    step = max(1, min(_BOOTSTRAPS, 1_000_000 // max(lo.size, 1)))  # ~8 MB of picks at once
    for start in range(0, _BOOTSTRAPS, step):
        pick = rng.integers(0, lo.size, (min(step, _BOOTSTRAPS - start), lo.size))
        diffs.append(np.quantile(hi[pick], 0.5, axis=1) - np.quantile(lo[pick], 0.5, axis=1))
    return float(np.concatenate(diffs).std(ddof=1))


def sensitivity(
    scenario: ScenarioLike = None,
    *,
    step: float = 0.1,
    trials: int = 10_000,
    seed: int = 0,
    progress: bool = False,
) -> PlanResult:
    """Which input matters most: P50 and P10 revenue with each input moved by ``-step``/``+step``.

    Every stage's conversion and dwell time, the arrivals (leads) and the amounts
    are scaled by ``1 - step`` and ``1 + step`` in turn (a conversion is capped at
    1), each run on the base's random numbers. The base runs ``trials`` trials; each
    moved input runs the base's first :func:`paired_trials` (a quarter, at least
    2,000): its change is a paired difference on common random numbers, far more
    precise than either P50, so fewer trials measure it (``swing_se``: its bootstrap
    standard error over those trials). A moved input's P50 is the base's plus that
    change. ``progress`` shows a bar counting the trials of every run on stderr
    (after ~2 s, terminals only).

    Returns
    -------
    PlanResult
        ``table`` (sensitivity.parquet), ranked by ``swing`` (largest first):
        ``rank``, ``input``, ``quantity``, ``stage``, ``factor_down``, ``factor_up``,
        ``p50_base``, ``p50_down``, ``p50_up``, ``delta_p50_down``, ``delta_p50_up``,
        ``p10_base``, ``delta_p10_down``, ``delta_p10_up``, ``swing``
        (= |delta_p50_up - delta_p50_down|) and ``swing_se``. The metadata holds
        ``paired_trials``.
    """
    sc = as_scenario(scenario)
    check_run(trials, None, sc)
    if not 0.0 < float(step) < 1.0:
        raise InputError(
            f"step={step}: must be between 0 and 1 (0.1 moves inputs by 10%).",
            parameters=("step",),
        )
    inputs = _inputs(sc, float(step))
    variants = []
    for _, quantity, stage, down, up in inputs:
        for factor in (down, up):
            variants.append(apply_lever(sc, Lever(quantity, "scale", factor, stage)))
    pb, pvs = common_random_numbers.prepare_pair(sc, variants)
    paired = paired_trials(trials)
    with Progress(trials + len(pvs) * paired, enabled=progress, desc="sensitivity") as bar:
        # The open deals once: the base and the moved leads add their new leads to them.
        book = common_random_numbers.open_book(pb, trials, seed)
        base = total_revenue(common_random_numbers.with_leads(book, pb, seed, bar)[0])
        first = (book[0][:paired], book[1][:paired])
        totals = [
            total_revenue(
                common_random_numbers.with_leads(first, p, seed, bar)[0]
                if quantity == "leads"
                else common_random_numbers.run(p, paired, seed, bar)[0]
            )
            for p, quantity in zip(pvs, [q for _, q, *_ in inputs for _ in (0, 1)], strict=True)
        ]
    b10, b50 = np.quantile(base, (0.1, 0.5))
    # The variants ran on the base's first trials: their changes are paired differences.
    m10, m50 = np.quantile(base[:paired], (0.1, 0.5))
    rows = []
    for k, (name, quantity, stage, down, up) in enumerate(inputs):
        lo, hi = totals[2 * k], totals[2 * k + 1]
        lo10, lo50 = np.quantile(lo, (0.1, 0.5))
        hi10, hi50 = np.quantile(hi, (0.1, 0.5))
        rows.append(
            {
                "input": name,
                "quantity": quantity,
                "stage": stage,
                "factor_down": down,
                "factor_up": up,
                "p50_base": float(b50),
                "p50_down": float(b50 + (lo50 - m50)),
                "p50_up": float(b50 + (hi50 - m50)),
                "delta_p50_down": float(lo50 - m50),
                "delta_p50_up": float(hi50 - m50),
                "p10_base": float(b10),
                "delta_p10_down": float(lo10 - m10),
                "delta_p10_up": float(hi10 - m10),
                "swing": float(abs(hi50 - lo50)),
                "swing_se": swing_se(lo, hi, seed),
            }
        )
    frame = pd.DataFrame(rows).sort_values("swing", ascending=False, kind="stable")
    frame.insert(0, "rank", np.arange(1, len(frame) + 1, dtype=np.int64))
    frame = frame.reset_index(drop=True)
    meta = base_metadata("sensitivity", sc, trials, seed)
    meta["step"] = str(step)
    meta["paired_trials"] = str(paired)
    result = PlanResult("sensitivity", sc, {"sensitivity": frame}, meta)
    from pipesim.plan.printed import sensitivity_report

    result.text = sensitivity_report(result)
    return result
