"""What ``pipesim explain`` prints: the window's forecast from OLD to NEW, step by step."""

from __future__ import annotations

from pipesim.plan.plan_result import PlanResult
from pipesim.text_table import table

BAR = 24  # characters of the longest bar


def bar(delta: float, largest: float) -> str:
    """``+████`` or ``-██``: a step's mean move, scaled to the largest move."""
    if largest <= 0 or delta == 0:
        return ""
    width = max(1, round(BAR * abs(delta) / largest))
    return ("+" if delta > 0 else "-") + "█" * width


def movement_report(result: PlanResult) -> str:
    """The waterfall: OLD's level, each step's deltas and mean bar, NEW's level."""
    meta, frame = result.metadata, result.tables["movement"]
    cur = f" ({result.scenario.currency})" if result.scenario.currency else ""
    old = [float(meta[f"old_{k}"]) for k in ("mean", "p10", "p50", "p90")]
    new = [float(meta[f"new_{k}"]) for k in ("mean", "p10", "p50", "p90")]
    largest = float(frame["delta_mean"].abs().max()) if len(frame) else 0.0
    rows = [[f"OLD ({meta['old_as_of']})", "", *(f"{v:,.0f}" for v in old), ""]]
    for _, r in frame.iterrows():
        rows.append(
            [
                str(r["step"]),
                f"{int(r['deals']):,}",
                *(f"{r[c]:+,.0f}" for c in ("delta_mean", "delta_p10", "delta_p50", "delta_p90")),
                bar(float(r["delta_mean"]), largest),
            ]
        )
    rows.append([f"NEW ({meta['as_of']})", "", *(f"{v:,.0f}" for v in new), ""])
    header = ["step", "deals", f"mean{cur}", "P10", "P50", "P90", "mean moved"]
    trials = int(meta["trials"])
    lines = [
        f"pipesim explain · {meta['old_as_of']} -> {meta['as_of']} · {trials:,} trials · "
        f"seed {meta['seed']}",
        f"Revenue in {meta['window']} ({meta['window_start']} to {meta['window_end']}), "
        "won before as_of included; steps applied in this order on common random numbers "
        "(another order splits the move differently)",
        "",
        table(header, rows, left=1, right=[False, True, True, True, True, True, False]),
        "",
        f"NEW - OLD: mean {new[0] - old[0]:+,.0f}, P10 {new[1] - old[1]:+,.0f}, "
        f"P50 {new[2] - old[2]:+,.0f}, P90 {new[3] - old[3]:+,.0f}",
        *[f"Note: {m}" for m in result.messages],
    ]
    return "\n".join(lines)
