"""The report's sections of the planning files: comparison, sensitivity, target, health.

Tables say what a number is in words (``gain in P50``, not ``delta_p50``), carry the
currency once in their header and format every number; a missing value shows as ``–``.
"""

from __future__ import annotations

import math

import pandas as pd

from pipesim.reports.html_parts import esc, html_table
from pipesim.reports.results_folder import tornado_frame

DASH = "–"


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def amount(value: object, decimals: int = 0) -> str:
    """``1,234,567`` (``–`` for a missing or infinite value)."""
    v = _number(value)
    return f"{v:,.{decimals}f}" if math.isfinite(v) else DASH


def signed(value: object) -> str:
    """``+12,300`` / ``−4,500`` (a true minus sign); ``–`` when missing."""
    v = _number(value)
    if not math.isfinite(v):
        return DASH
    return f"{v:+,.0f}".replace("-", "−")


def share(value: object, decimals: int = 0) -> str:
    """``37%`` (``–`` when missing or infinite)."""
    v = _number(value)
    return f"{v:.{decimals}%}" if math.isfinite(v) else DASH


def _unit(currency: str) -> str:
    return f" ({currency})" if currency else ""


def compare_section(compare: pd.DataFrame, currency: str) -> str:
    """Each variant's revenue over the horizon, then its gain on the base, trial by trial."""
    cur = _unit(currency)
    levels = [
        [r["variant"], *(amount(r[c]) for c in ("mean", "p10", "p50", "p90"))]
        for _, r in compare.iterrows()
    ]
    gains = []
    for _, r in compare.iloc[1:].iterrows():
        se = r.get("delta_se", math.nan)
        gain = signed(r.get("delta_mean"))
        if math.isfinite(_number(se)):
            gain += f" ± {amount(se)}"
        quantiles = (signed(r.get(c)) for c in ("delta_p10", "delta_p50", "delta_p90"))
        gains.append([r["variant"], gain, *quantiles, share(r.get("p_better"))])
    parts = [html_table(["variant", f"mean{cur}", "P10", "P50", "P90"], levels, 1)]
    if gains:
        header = ["variant", f"gain in mean ± se{cur}", "gain in P10", "gain in P50"]
        header += ["gain in P90", "P(better than base)"]
        parts.append(html_table(header, gains, 1))
    parts.append(
        '<p class="note">Revenue over the horizon. A gain is the variant minus the base in the '
        "same simulated future (common random numbers), summarised over the futures; ± se is "
        "the Monte Carlo standard error of the mean gain.</p>"
    )
    return "".join(parts)


def sensitivity_section(sens: pd.DataFrame, currency: str, settings: dict[str, str]) -> str:
    """The tornado's numbers: the change in P50 (and P10) revenue as each input moves."""
    frame = tornado_frame(sens)
    if frame is None:
        return '<p class="note">No change in P50 found in sensitivity.parquet.</p>'
    step = _number(settings.get("step"))
    down, up = (f"−{step:.0%}", f"+{step:.0%}") if math.isfinite(step) else ("down", "up")
    rows = [
        [
            r["input"],
            signed(r["down_p50"]),
            signed(r["up_p50"]),
            amount(abs(_number(r["up_p50"]) - _number(r["down_p50"]))),
            signed(r["down_p10"]),
            signed(r["up_p10"]),
        ]
        for _, r in frame.iterrows()
    ]
    header = [
        "input",
        f"P50 change, input {down}{_unit(currency)}",
        f"input {up}",
        "swing",
        f"P10 change, input {down}",
        f"input {up}",
    ]
    base = sens["p50_base"].iloc[0] if "p50_base" in sens and len(sens) else math.nan
    said = (
        f" Base P50: {amount(base)}{' ' + currency if currency else ''}."
        if math.isfinite(_number(base))
        else ""
    )
    note = (
        '<p class="note">Change in revenue over the horizon when one input moves and the '
        f"others stay, on the same simulated futures; widest swing first.{esc(said)}</p>"
    )
    return html_table(header, rows, 1) + note


def target_section(table: pd.DataFrame, settings: dict[str, str], currency: str) -> str:
    """The new leads a month the target needs, per month (and segment), and at every stage."""
    money = f" {currency}" if currency else ""
    s = settings
    lines = [
        f"Target: {amount(s.get('revenue_target'))}{money} won over the first "
        f"{s.get('months', '?')} month(s), with probability at least "
        f"{share(s.get('confidence'))}.",
        f"New leads needed: {amount(s.get('leads_needed_per_month'))} a month (now "
        f"{amount(s.get('leads_current_per_month'))}); the funnel arithmetic's first guess was "
        f"{amount(s.get('first_guess_leads_per_month'))}.",
        f"Probability reached: {share(s.get('probability'), 1)} (Monte Carlo standard error "
        f"{share(s.get('probability_se'), 1)}); the open deals alone: "
        f"{share(s.get('probability_open_deals_only'), 1)}.",
    ]
    if s.get("reachable") == "false":
        lines.append("The target is out of reach in this window, whatever the lead volume.")
    by = [c for c in s.get("by", "").split(",") if c and c in table.columns]
    stages = [c for c in table.columns if c.startswith("needed_")]
    rows = [
        [
            r["period"],
            *(DASH if pd.isna(r[c]) else r[c] for c in by),
            amount(r["leads_current"], 1),
            amount(r["leads_needed"], 1),
            *(amount(r[c], 1) for c in stages),
        ]
        for _, r in table.iterrows()
    ]
    header = ["month", *by, "leads now", "leads needed", *(c[len("needed_") :] for c in stages)]
    return (
        '<p class="note">' + "<br>".join(esc(x) for x in lines) + "</p>"
        '<p class="note">Deals that must enter each stage each month:</p>'
        + html_table(header, rows, 1 + len(by))
    )


def health_section(
    table: pd.DataFrame, settings: dict[str, str], currency: str, drift: pd.DataFrame | None
) -> str:
    """Each stage's deals now against the stock the target needs; drift flags when given."""
    money = f" {currency}" if currency else ""
    s = settings
    short = s.get("short") == "true"
    head = (
        f"Target {amount(s.get('revenue_target'))}{money} over {s.get('months', '?')} "
        f"month(s) at confidence {share(s.get('confidence'))}: as it stands the scenario "
        f"reaches it with probability {share(s.get('probability'), 1)}, "
        f"{'short of' if short else 'meeting'} that confidence. Coverage = deals now / deals "
        "the target's lead flow keeps in the stage."
    )
    by = [c for c in s.get("by", "").split(",") if c and c in table.columns]
    rows = [
        [
            *(DASH if pd.isna(r[c]) else r[c] for c in by),
            r["stage"],
            amount(r["deals_now"]),
            amount(r["value_now"]),
            amount(r["deals_needed"]),
            share(r["coverage"]),
            "bottleneck" if bool(r["bottleneck"]) else "",
        ]
        for _, r in table.iterrows()
    ]
    header = [*by, "stage", "deals now", f"value now{_unit(currency)}", "deals needed"]
    parts = [
        f'<p class="note">{esc(head)}</p>',
        html_table([*header, "coverage", ""], rows, len(by) + 1),
    ]
    if drift is not None and len(drift) and drift["flag"].astype(bool).any():
        flagged = drift[drift["flag"].astype(bool)]
        known = {"period", "stage", "metric", "actual", "p10", "p50", "p90", "flag", "direction"}
        segs = [c for c in flagged.columns if c not in known]
        drift_rows = [
            [
                r["period"],
                r["stage"],
                *(DASH if pd.isna(r[c]) else r[c] for c in segs),
                str(r["metric"]).replace("_", " "),
                *(amount(r[c]) for c in ("actual", "p10", "p50", "p90")),
                r.get("direction", ""),
            ]
            for _, r in flagged.iterrows()
        ]
        parts += [
            '<p class="note">Drift: months and stages whose actuals fell outside the '
            "model's P10–P90.</p>",
            html_table(
                ["month", "stage", *segs, "measure", "actual", "P10", "P50", "P90", ""],
                drift_rows,
                3 + len(segs),
            ),
        ]
    return "".join(parts)
