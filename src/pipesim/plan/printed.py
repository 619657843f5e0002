"""Terminal reports of the planning commands: ranked, aligned tables."""

from __future__ import annotations

import pandas as pd

from pipesim.plan.plan_result import PlanResult
from pipesim.text_table import table


def _n(value: float, decimals: int = 0) -> str:
    return f"{value:,.{decimals}f}"


def _head(result: PlanResult, title: str) -> str:
    sc, meta = result.scenario, result.metadata
    return (
        f"pipesim {title} · {sc.name or 'scenario'} · as of {sc.as_of} · "
        f"{int(meta['trials']):,} trials · seed {meta['seed']}"
    )


def target_report(result: PlanResult) -> str:
    """What ``pipesim target`` prints."""
    meta, frame = result.metadata, result.table
    cur = f" {result.scenario.currency}" if result.scenario.currency else ""
    months = int(meta["months"])
    span = f"over the first {months} month(s)"
    if meta.get("window"):
        span = f"in {meta['window']} ({meta['window_start']} to {meta['window_end']})"
    if meta.get("owner"):
        span = f"by {meta['owner']} {span}"
    if float(meta.get("booked") or 0.0) > 0:
        span += f" ({_n(float(meta['booked']))}{cur} of it already booked)"
    by = [c for c in meta["by"].split(",") if c]
    stages = [c for c in frame.columns if c.startswith("needed_")]
    lines = [
        _head(result, "target"),
        "",
        f"Target: {_n(float(meta['revenue_target']))}{cur} won {span}, "
        f"with probability >= {float(meta['confidence']):g}",
        f"Funnel arithmetic (first guess): {_n(float(meta['first_guess_leads_per_month']))} "
        "new leads a month",
        f"Leads needed: {_n(float(meta['leads_needed_per_month']))} a month "
        f"(now {_n(float(meta['leads_current_per_month']))}, x{float(meta['scale']):.2f})",
        f"Probability reached: {float(meta['probability']):.3f} "
        f"(Monte Carlo standard error {float(meta['probability_se']):.3f}); "
        f"open deals alone: {float(meta['probability_open_deals_only']):.3f}",
        *[f"Note: {m}" for m in result.messages],
        "",
    ]
    header = ["period", *by, "leads now", "leads needed", *[s[len("needed_") :] for s in stages]]
    rows = [
        [
            str(r["period"]),
            *(str(r[c]) for c in by),
            _n(r["leads_current"], 1),
            _n(r["leads_needed"], 1),
            *(_n(r[s], 1) for s in stages),
        ]
        for _, r in frame.iterrows()
    ]
    lines.append(table(header, rows, left=1 + len(by)))
    return "\n".join(lines)


def compare_report(result: PlanResult) -> str:
    """What ``pipesim compare`` prints: variants ranked by mean gain."""
    frame = result.table
    cur = f" ({result.scenario.currency})" if result.scenario.currency else ""
    ranked = pd.concat([frame.iloc[[0]], frame.iloc[1:].sort_values("delta_mean", ascending=False)])
    header = [
        "variant",
        f"mean{cur}",
        "P10",
        "P50",
        "P90",
        "gain mean",
        "± se",
        "gain P10",
        "gain P50",
        "gain P90",
        "P(better)",
    ]
    rows = [
        [
            str(r["variant"]),
            *(_n(r[c]) for c in ("mean", "p10", "p50", "p90")),
            f"{r['delta_mean']:+,.0f}",
            _n(r["delta_se"]),
            *(f"{r[c]:+,.0f}" for c in ("delta_p10", "delta_p50", "delta_p90")),
            f"{r['p_better']:.1%}",
        ]
        for _, r in ranked.iterrows()
    ]
    lines = [
        _head(result, "compare"),
        f"Revenue over the {result.scenario.horizon_months}-month horizon; every variant on the "
        "base's random numbers (gain = variant - base, trial by trial)",
        "",
        table(header, rows),
        *[f"Note: {m}" for m in result.messages],
    ]
    return "\n".join(lines)


def sensitivity_report(result: PlanResult) -> str:
    """What ``pipesim sensitivity`` prints: the tornado, largest swing first."""
    frame = result.table
    step = float(result.metadata["step"])
    header = [
        "rank",
        "input",
        f"P50 at -{step:.0%}",
        f"P50 at +{step:.0%}",
        "swing",
        "± se",
        "P10 at -",
        "P10 at +",
    ]
    rows = [
        [
            str(r["rank"]),
            str(r["input"]),
            f"{r['delta_p50_down']:+,.0f}",
            f"{r['delta_p50_up']:+,.0f}",
            _n(r["swing"]),
            _n(r["swing_se"]) if "swing_se" in r else "-",
            f"{r['delta_p10_down']:+,.0f}",
            f"{r['delta_p10_up']:+,.0f}",
        ]
        for _, r in frame.iterrows()
    ]
    base = frame["p50_base"].iloc[0] if len(frame) else float("nan")
    return "\n".join(
        [
            _head(result, "sensitivity"),
            f"Change in P50 (and P10) revenue over the horizon when one input moves by ±{step:.0%}"
            f" (base P50 {_n(base)})",
            *_paired_line(result),
            "",
            table(header, rows, left=2),
        ]
    )


def _paired_line(result: PlanResult) -> list[str]:
    """How many trials the moved inputs ran on, when fewer than the base's."""
    paired = result.metadata.get("paired_trials")
    trials = result.metadata.get("trials")
    if not paired or paired == trials:
        return []
    return [
        f"Each moved input ran on the base's first {int(paired):,} trials: its change is a "
        "paired difference on common random numbers (± se: its standard error)."
    ]


def health_report(result: PlanResult) -> str:
    """What ``pipesim health`` prints: stages by coverage, then the drift flags."""
    frame = result.table
    by = [c for c in result.metadata["by"].split(",") if c]
    ranked = frame.sort_values([*by, "coverage"], kind="stable") if len(frame) else frame
    cur = result.scenario.currency
    value = f"value now ({cur})" if cur else "value now"
    header = [*by, "stage", "deals now", value, "deals needed", "coverage", ""]
    rows = [
        [
            *(str(r[c]) for c in by),
            str(r["stage"]),
            _n(r["deals_now"]),
            _n(r["value_now"]),
            _n(r["deals_needed"]),
            f"{r['coverage']:.0%}" if r["coverage"] != float("inf") else "-",
            "bottleneck" if r["bottleneck"] else "",
        ]
        for _, r in ranked.iterrows()
    ]
    meta = result.metadata
    lines = [
        _head(result, "health"),
        f"Target {_n(float(meta['revenue_target']))}{' ' + cur if cur else ''} over "
        f"{meta['months']} month(s) at "
        f"confidence {float(meta['confidence']):g}; stages ranked by coverage (now / needed)",
        "",
        table(header, rows, left=1 + len(by)),
        "",
        *[f"Note: {m}" for m in result.messages],
    ]
    drift = result.tables.get("drift")
    if drift is not None and len(drift) and drift["flag"].any():
        flagged = drift[drift["flag"]]
        segs = [
            c
            for c in flagged.columns
            if c
            not in ("period", "stage", "metric", "actual", "p10", "p50", "p90", "flag", "direction")
        ]
        lines += [
            "",
            "Drift flags (actual outside the model's P10-P90)",
            table(
                ["period", "stage", *segs, "metric", "actual", "P10", "P50", "P90", ""],
                [
                    [
                        str(r["period"]),
                        str(r["stage"]),
                        *(str(r[c]) for c in segs),
                        str(r["metric"]),
                        _n(r["actual"]),
                        _n(r["p10"]),
                        _n(r["p50"]),
                        _n(r["p90"]),
                        str(r["direction"]),
                    ]
                    for _, r in flagged.iterrows()
                ],
                left=3 + len(segs),
            ),
        ]
    return "\n".join(lines)
