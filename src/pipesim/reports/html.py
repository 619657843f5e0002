"""The HTML report of a run: one self-contained file (inline SVG charts, inline CSS, no script).

Every text that comes from data (stage names, segment values, variant names,
settings) is escaped (:func:`pipesim.reports.html_parts.esc`); chart text is escaped
by matplotlib's SVG writer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.reports import html_plans
from pipesim.reports.charts import MAX_PANELS, Chart
from pipesim.reports.forecast_call import won_label
from pipesim.reports.html_deals import deals_section
from pipesim.reports.html_parts import cards, esc, figure_html, html_table, money, page
from pipesim.reports.results_folder import QUOTA_NEEDS, ReportData
from pipesim.simulation.reaching import share_reaching
from pipesim.text_table import percent

QUOTA_VALUES = (*QUOTA_NEEDS, "mean")
READING = (
    "How to read P10, P50 and P90: of the simulated futures, 10% end below P10, half below "
    "P50 (the median) and 90% below P90. So revenue falls between P10 and P90 in 8 futures "
    "out of 10, below P10 in 1 and above P90 in 1; the mean is the average over all of them."
)


def _bands(data: ReportData, cumulative: bool) -> str:
    rev = data.whole("revenue", cumulative)
    won = data.whole("won_deals", cumulative)
    cur = data.currency
    rows = [
        [
            p,
            *(money(rev.loc[p, c], cur) for c in ("p10", "p50", "p90", "mean")),
            *(f"{won.loc[p, c]:,.0f}" for c in ("p10", "p50", "p90")),
            f"{won.loc[p, 'mean']:,.1f}",
        ]
        for p in rev.index
    ]
    head = ["month", "revenue P10", "P50", "P90", "mean", "won deals P10", "P50", "P90", "mean"]
    return html_table(head, rows, 1)


def _quarters(data: ReportData) -> str:
    rev = data.whole_quarters("revenue")
    won = data.whole_quarters("won_deals")
    cur = data.currency
    rows = [
        [
            r["label"],
            f"{r['start']} – {r['end']}",
            "yes" if r["complete"] else "no: as_of or the horizon cuts it",
            *(money(r[c], cur) for c in ("p10", "p50", "p90", "mean")),
            *(f"{w[c]:,.0f}" for c in ("p10", "p50", "p90")),
        ]
        for (_, r), (_, w) in zip(rev.iterrows(), won.iterrows(), strict=True)
    ]
    head = ["quarter", "days", "whole", "revenue P10", "P50", "P90", "mean"]
    head += ["won deals P10", "P50", "P90"]
    return html_table(head, rows, 3)


def _quota(quota: pd.DataFrame, currency: str) -> str:
    owners = [c for c in quota.columns if c not in QUOTA_VALUES]
    ranked = quota.sort_values("p_attain", kind="stable")
    rows = [
        [
            ", ".join(f"{c}={r[c]}" for c in owners if r[c] is not None and r[c] == r[c])
            or "company",
            r["period"],
            money(r["quota"], currency),
            *(money(r[c], currency) for c in ("p10", "p50", "p90")),
            f"{r['p_attain']:.0%}",
            f"{r['p_attain_80']:.0%}",
            money(r["expected_gap"], currency),
        ]
        for _, r in ranked.iterrows()
    ]
    head = ["owner", "period", "quota", "revenue P10", "P50", "P90", "P(attain)", "P(≥ 80%)"]
    note = (
        '<p class="note">Each owner\'s revenue in the period, trial by trial: its deals, its '
        "new leads and its revenue already booked; a team sums its reps in each trial, so its "
        "chance is not the average of theirs. Least likely first.</p>"
    )
    return html_table([*head, "expected gap"], rows, 2) + note


def _call(call: pd.DataFrame, currency: str) -> str:
    """The reps' call and the model's figures for the quarter, one per row."""
    r = call.iloc[0]
    rows = [
        [f"Commit ({int(r['commit_deals']):,} open deals)", money(r["commit"], currency)],
        [
            f"Commit + Best Case ({int(r['best_case_deals']):,} Best Case deals)",
            money(r["commit_best_case"], currency),
        ],
        ["weighted pipeline (Omitted left out)", money(r["weighted_pipeline"], currency)],
        *([f"model {c.upper()}", money(r[c], currency)] for c in ("p10", "p50", "p90")),
        ["model mean", money(r["mean"], currency)],
        ["P(revenue ≥ Commit)", percent(r["p_commit"])],
    ]
    if r["booked"]:
        rows.insert(0, [f"{won_label(r)} (in Commit and the model)", money(r["booked"], currency)])
    cut = "" if r["complete"] else "; part of the quarter: from as_of, or cut by the horizon"
    note = (
        f'<p class="note">{esc(r["start"])} – {esc(r["end"])}{cut}. The call is what the CRM '
        "rolls up from the open deals' forecast categories (Commit and Best Case include the "
        "revenue already won in the quarter; the weighted pipeline is each open deal's amount "
        "times its stage's P(won)). The model's figures are the quarter's revenue over the "
        "same trials as the rest of this report; P(revenue ≥ Commit) is the share of trials "
        "that reach the Commit total.</p>"
    )
    return html_table(["", "revenue"], rows, 1) + note


def _cards(data: ReportData) -> str:
    last = data.periods[-1]
    rev = data.whole("revenue", True).loc[last]
    won = data.whole("won_deals", True).loc[last]
    cards_ = [(money(rev[c], data.currency), f"revenue {c.upper()}") for c in ("p10", "p50", "p90")]
    cards_.append((money(rev["mean"], data.currency), "revenue mean"))
    cards_.append((f"{won['p50']:,.0f}", "won deals P50"))
    if data.target is not None:
        cards_.append((money(data.target, data.currency), "target"))
        if data.totals is not None and len(data.totals):
            cards_.append((f"{share_reaching(data.totals, data.target):.0%}", "P(total ≥ target)"))
    return cards(cards_)


def _settings(data: ReportData) -> str:
    s = data.settings
    rows = [
        ("scenario", s.get("scenario_name", "")),
        ("scenario folder", s.get("scenario", "")),
        ("as of", s.get("as_of", "")),
        ("horizon", f"{s.get('horizon_months', len(data.periods))} months"),
        ("trials", f"{int(s['trials']):,}" if s.get("trials", "").isdigit() else s.get("trials")),
        ("seed", s.get("seed", "")),
        ("engine", s.get("engine", "")),
        ("segments (--by)", ", ".join(data.by) or "none"),
        ("currency", data.currency or "none"),
        ("target", money(data.target, data.currency) if data.target is not None else "none"),
        ("scenario fingerprint", s.get("scenario_fingerprint", "none (older pipesim)")),
        ("pipesim version", s.get("pipesim_version", "")),
        ("results folder", str(data.folder.resolve())),
    ]
    return html_table(["setting", "value"], rows, 2)


def _funnel(funnel: pd.DataFrame, currency: str) -> str:
    names = [str(s) for s in funnel["stage"]]
    rows = [
        [
            s,
            f"{int(d):,}",
            money(v, currency),
            f"{c:.0%} → {n}",
            f"{w:.1%}" if "win_probability" in funnel else "",
        ]
        for s, d, v, c, w, n in zip(
            names,
            funnel["deals"],
            funnel["value"],
            funnel["conversion"],
            funnel.get("win_probability", pd.Series([np.nan] * len(funnel))),
            [*names[1:], "Won"],
            strict=True,
        )
    ]
    return html_table(["stage", "open deals", "value", "conversion", "P(won) from here"], rows, 1)


def _segment_table(data: ReportData) -> str:
    last = data.periods[-1]
    rows = []
    for labels in data.segments():
        rev = data.block(labels, "revenue", True).loc[last]
        won = data.block(labels, "won_deals", True).loc[last]
        rows.append(
            [
                *("(none)" if v is None else v for v in labels),
                *(money(rev[c], data.currency) for c in ("p10", "p50", "p90", "mean")),
                f"{won['p50']:,.0f}",
                f"{won['mean']:,.1f}",
            ]
        )
    head = [*data.by, "revenue P10", "P50", "P90", "mean", "won deals P50", "mean"]
    return html_table(head, rows, len(data.by))


def _odds(odds: pd.DataFrame) -> str:
    """One sentence per stage: a deal 90 days old against a fresh one."""
    lines = []
    for stage, grp in odds.groupby("stage", sort=False):
        fresh = grp.loc[grp["age_days"] == 0, "odds"]
        old = grp.loc[grp["age_days"] == 90, "odds"]
        if len(fresh) and len(old):
            lines.append(
                f"{esc(stage)}: a deal 90 days old advances {percent(old.iloc[0])}, "
                f"a fresh one {percent(fresh.iloc[0])}."
            )
    return '<p class="note">' + "<br>".join(lines) + "</p>" if lines else ""


def _close_dates(law: pd.DataFrame) -> str:
    """Per stage and pushes: P(won by the stated date), P(won at all); then past the date."""
    past = ("", "1-7 days", "8-30 days", "31-90 days", "91+ days")
    rows = []
    for r in law.sort_values(["overdue"], kind="stable").to_dict("records"):
        if r["overdue"] and not r["rows"]:
            continue
        k = f"{r['pushes']}+" if r["pushes"] == 3 else str(r["pushes"])
        by_date = "" if r["overdue"] or pd.isna(r["p_by_date"]) else percent(r["p_by_date"])
        rows.append(
            [
                r["stage"], k, past[int(r["overdue"])] or "not yet", f"{int(r['rows']):,}",
                by_date, percent(r["p_win"]),
            ]
        )  # fmt: skip
    head = ["stage", "pushes", "past the date", "deals seen", "P(won by the date)", "P(won)"]
    note = (
        '<p class="note">Deals with a stated close date are timed by this law: won on the '
        "date plus a lateness drawn from what happened to deals like them (calibrate, from "
        "the close-date history); the others by their stage's clocks.</p>"
    )
    return html_table(head, rows, 3) + note


def render_html(data: ReportData, charts: list[Chart]) -> str:
    """The whole report as one HTML string."""
    name = data.settings.get("scenario_name") or data.folder.name
    parts = [
        f"<h1>pipesim report: {esc(name)}</h1>",
        f'<p class="sub">as of {esc(data.settings.get("as_of", ""))} · {len(data.periods)} months'
        f" · revenue over the horizon</p>",
        *report_sections(data, charts),
    ]
    return page(f"pipesim report: {name}", parts)


def report_sections(data: ReportData, charts: list[Chart]) -> list[str]:
    """The report's body below its title: cards, charts and tables (also the planning page's)."""
    by_id = {c.id: c for c in charts}
    cur = data.currency
    parts = [_cards(data), f'<p class="read">{esc(READING)}</p>']
    parts.append("<h2>Revenue</h2>")
    parts += [
        figure_html(by_id[i]) for i in ("fan-monthly", "fan-cumulative", "histogram") if i in by_id
    ]
    parts += ["<h3>Per month</h3>", _bands(data, False), "<h3>Cumulative</h3>", _bands(data, True)]
    if len(data.whole_quarters("revenue")):
        parts += ["<h2>Fiscal quarters and years</h2>"]
        parts += [figure_html(by_id["quarters"])] if "quarters" in by_id else []
        parts.append(_quarters(data))
    if data.quota is not None and len(data.quota):
        parts += ["<h2>Quotas and attainment</h2>", _quota(data.quota, cur)]
    if data.forecast_call is not None and len(data.forecast_call):
        quarter = data.forecast_call["quarter"].iloc[0]
        parts += [f"<h2>Forecast call: the reps' call and the model, {esc(quarter)}</h2>"]
        parts += [figure_html(by_id["forecast-call"])] if "forecast-call" in by_id else []
        parts.append(_call(data.forecast_call, cur))
    if data.deal_odds is not None and len(data.deal_odds):
        settings = data.file_settings.get("deal_odds", {})
        quarter = settings.get("deal_odds_quarter", "the current quarter")
        parts += [f"<h2>Deals that carry {esc(quarter)}</h2>"]
        parts.append(deals_section(data.deal_odds, settings, cur))
    if data.funnel is not None:
        parts += ["<h2>Funnel</h2>"]
        parts += [figure_html(by_id["funnel"])] if "funnel" in by_id else []
        parts.append(_funnel(data.funnel, cur))
    if data.odds is not None and len(data.odds):
        parts += ["<h2>Two clocks: the chance to advance by age</h2>"]
        parts += [figure_html(by_id["odds"])] if "odds" in by_id else []
        parts.append(_odds(data.odds))
    if data.close_dates is not None and len(data.close_dates):
        parts += ["<h2>Stated close dates: the odds by pushes</h2>"]
        parts.append(_close_dates(data.close_dates))
    segments = data.segments()
    if segments:
        parts += [f"<h2>By {esc(', '.join(data.by))}</h2>", _segment_table(data)]
        if "segments" in by_id:
            parts.append(figure_html(by_id["segments"]))
        if len(segments) > MAX_PANELS:
            parts.append(
                f'<p class="note">The charts show the first {MAX_PANELS} of {len(segments)} '
                "segments; the table lists them all.</p>"
            )
    if data.target_plan is not None:
        settings = data.file_settings.get("target", {})
        parts += ["<h2>Target: the new leads it needs</h2>"]
        parts.append(html_plans.target_section(data.target_plan, settings, cur))
    if data.health is not None:
        settings = data.file_settings.get("health", {})
        parts += ["<h2>Pipeline health: each stage against the target</h2>"]
        parts.append(html_plans.health_section(data.health, settings, cur, data.drift))
    if data.compare is not None:
        parts += ["<h2>Scenario comparison</h2>"]
        parts += [figure_html(by_id["compare"])] if "compare" in by_id else []
        parts.append(html_plans.compare_section(data.compare, cur))
    if data.sensitivity is not None:
        parts += ["<h2>Sensitivity</h2>"]
        parts += [figure_html(by_id["tornado"])] if "tornado" in by_id else []
        settings = data.file_settings.get("sensitivity", {})
        parts.append(html_plans.sensitivity_section(data.sensitivity, cur, settings))
    parts += ["<h2>Settings</h2>", _settings(data)]
    notes = (*data.left_out, *data.skipped)
    if notes:
        parts.append('<p class="note">' + "<br>".join(esc(s) for s in notes) + "</p>")
    return parts
