"""The run's terminal tables: revenue and won deals per month, the funnel, horizon totals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pipesim.prepare.loss_clock import odds_by_age
from pipesim.reports.forecast_call import forecast_call, won_label
from pipesim.reports.funnel_table import funnel_table
from pipesim.reports.top_deals import deals_text
from pipesim.simulation.attainment import ATTAIN_COLUMNS
from pipesim.simulation.precision import FLAG_ABOVE, relative_error
from pipesim.simulation.quarters import QUARTER_COLUMNS
from pipesim.simulation.result import Result
from pipesim.text_table import money, number, percent, table

MARK = "~"  # before a figure whose Monte Carlo standard error exceeds FLAG_ABOVE of it
STATS = ("mean", "p10", "p50", "p90")


def rough(row: pd.Series, column: str) -> bool:
    """Whether ``row[column]``'s standard error (``<column>_se``) exceeds 1 % of it.

    False when the summary has no standard errors (a results folder written before them).
    """
    se = row.get(f"{column}_se")
    if se is None or not np.isfinite(se):
        return False
    return bool(relative_error(se, float(row[column])) > FLAG_ABOVE)


def figures(row: pd.Series, fmt: Callable[[str, float], str], marks: list[bool]) -> list[str]:
    """Mean, P10, P50, P90 of ``row`` formatted, each rough one marked; ``marks`` notes any."""
    out = []
    for c in STATS:
        text = fmt(c, float(row[c]))
        if rough(row, c):
            marks.append(True)
            text = MARK + text
        out.append(text)
    return out


def mark_note(marks: list[bool]) -> list[str]:
    """The footnote for the marks, when a figure was marked."""
    if not any(marks):
        return []
    return [
        "",
        f"{MARK} the figure's Monte Carlo standard error is over {FLAG_ABOVE:.0%} of it "
        "(summary.parquet's *_se columns); more trials narrow it.",
    ]


def funnel_block(funnel: pd.DataFrame, currency: str = "") -> str:
    """The funnel at ``as_of``: open deals, their value, conversion to the next stage."""
    names = [str(s) for s in funnel["stage"]]
    rows = [
        [s, number(d), money(v, currency), f"{c:.0%} -> {n}", f"{w:.1%}"]
        for s, d, v, c, w, n in zip(
            names,
            funnel["deals"],
            funnel["value"],
            funnel["conversion"],
            funnel["win_probability"],
            [*names[1:], "Won"],
            strict=True,
        )
    ]
    header = ["stage", "open deals", "value", "conversion", "P(won)"]
    return table(header, rows)


def _revenue(c: str, v: float) -> str:
    return number(v)


def _won(c: str, v: float) -> str:
    return number(v, 1 if c == "mean" else 0)


def _block(summary: pd.DataFrame, cumulative: bool, marks: list[bool]) -> list[list[str]]:
    part = summary[summary["cumulative"] == cumulative]
    rev = part[part["metric"] == "revenue"].set_index("period")
    won = part[part["metric"] == "won_deals"].set_index("period")
    rows = []
    for period in rev.index:
        r, w = rev.loc[period], won.loc[period]
        rows.append([period, *figures(r, _revenue, marks), *figures(w, _won, marks)])
    return rows


def trials_line(result: Result) -> str:
    """``10,000 trials``; after trials="auto", how many and whether the precision was reached."""
    count = f"{result.trials_count:,} trials"
    a = result.auto
    if a is None:
        return count
    if a.reached:
        return (
            f"{count} (auto: the horizon's P10/P50/P90 known to {a.relative_se:.2%} "
            f"standard error, {a.precision:.2%} asked)"
        )
    return (
        f"{count} (auto: the maximum reached; the horizon's P10/P50/P90 are within "
        f"{a.relative_se:.2%} standard error, not the {a.precision:.2%} asked)"
    )


def run_report(result: Result) -> str:
    """The text ``pipesim run`` prints: monthly and cumulative bands, then segments."""
    sc = result.scenario
    cur = f" ({sc.currency})" if sc.currency else ""
    head = [
        f"pipesim · {sc.name or 'scenario'} · as of {sc.as_of} · {sc.horizon_months} months · "
        f"{sc.deal_count:,} open deals · {trials_line(result)} · seed {result.seed}",
    ]
    marks: list[bool] = []
    whole = result.summary()
    header = ["period", f"revenue mean{cur}", "P10", "P50", "P90", "won mean", "P10", "P50", "P90"]
    out = [
        *head,
        "",
        f"Funnel at {sc.as_of}",
        funnel_block(funnel_table(sc), sc.currency),
        "",
        "Per month",
        table(header, _block(whole, False, marks)),
        "",
        "Cumulative",
        table(header, _block(whole, True, marks)),
    ]
    out += ["", "Per fiscal quarter and year", quarter_block(result.quarters(), sc.currency)]
    quota = result.quota()
    if quota is not None:
        out += ["", "Quotas: the chance to make each one, least likely first", quota_block(quota)]
    call = forecast_call(result)
    if call is not None:
        out += ["", *call_block(call, sc.currency)]
    odds = odds_by_age(sc)
    if len(odds):
        out += [
            "",
            "Two clocks: the chance to advance of a deal still open at an age",
            odds_block(odds),
        ]
    if result.deal_odds is not None:
        out += ["", deals_text(result.deal_odds.table, result.deal_odds.quarter, sc.currency)]
    if result.by:
        full = result.summary(result.by)
        last = full[(full["cumulative"]) & (full["period"] == result.periods[-1])]
        rows = []
        for _, grp in last.groupby(list(result.by), dropna=False, sort=False):
            first = grp.iloc[0]
            if all(first[c] is None for c in result.by):
                continue
            r = grp[grp["metric"] == "revenue"].iloc[0]
            w = grp[grp["metric"] == "won_deals"].iloc[0]
            rows.append(
                [
                    *(str(first[c]) for c in result.by),
                    *figures(r, _revenue, marks),
                    *figures(w, _won, marks),
                ]
            )
        seg_header = [
            *result.by,
            f"revenue mean{cur}",
            "P10",
            "P50",
            "P90",
            "won mean",
            "P10",
            "P50",
            "P90",
        ]
        out += [
            "",
            f"Over the horizon, by {', '.join(result.by)}",
            table(seg_header, rows, left=len(result.by)),
        ]
    return "\n".join(out + mark_note(marks))


def quarter_block(quarters: pd.DataFrame, currency: str = "") -> str:
    """Whole-book fiscal quarters and years: revenue and won deals, partial ones marked."""
    whole = quarters
    by = [c for c in quarters.columns if c not in QUARTER_COLUMNS]
    if by:
        whole = quarters[quarters[by].isna().all(axis=1)]
    rev = whole[whole["metric"] == "revenue"].reset_index(drop=True)
    won = whole[whole["metric"] == "won_deals"].reset_index(drop=True)
    cur = f" ({currency})" if currency else ""
    rows = []
    for (_, r), (_, w) in zip(rev.iterrows(), won.iterrows(), strict=True):
        name = r["fiscal_year"] if r["quarter"] == "FY" else f"{r['fiscal_year']}-{r['quarter']}"
        rows.append(
            [
                name,
                f"{r['start']} to {r['end']}" + ("" if r["complete"] else " (part)"),
                *(number(r[c]) for c in ("mean", "p10", "p50", "p90")),
                *(number(w[c], 1 if c == "mean" else 0) for c in ("mean", "p10", "p50", "p90")),
            ]
        )
    header = ["quarter", "days", f"revenue mean{cur}", "P10", "P50", "P90", "won mean"]
    header += ["P10", "P50", "P90"]
    text = table(header, rows, left=2)
    if not rev["complete"].all():
        text += (
            "\n(part): as_of or the horizon cuts it: the days the forecast covers, plus the "
            "revenue already booked before as_of (won.parquet, when the scenario has one)."
        )
    return text


def quota_block(quota: pd.DataFrame) -> str:
    """quota.parquet's rows sorted by P(attain), least likely first."""
    owners = [c for c in quota.columns if c not in ("period", "quota", *ATTAIN_COLUMNS)]
    ranked = quota.sort_values("p_attain", kind="stable")
    rows = [
        [
            ", ".join(f"{c}={r[c]}" for c in owners if r[c] is not None) or "company",
            str(r["period"]),
            number(r["quota"]),
            *(number(r[c]) for c in ("p10", "p50", "p90")),
            percent(r["p_attain"]),
            percent(r["p_attain_80"]),
            number(r["expected_gap"]),
        ]
        for _, r in ranked.iterrows()
    ]
    header = ["owner", "period", "quota", "P10", "P50", "P90", "P(attain)", "P(>=80%)"]
    return table([*header, "expected gap"], rows, left=2)


def horizon_table(summary: pd.DataFrame, by: Sequence[str], currency: str = "") -> str:
    """Revenue and won deals over the whole horizon, whole book first, then each segment."""
    last = summary["period"].astype(str).max()
    rows = summary[summary["cumulative"] & (summary["period"].astype(str) == last)]
    out = []
    keys = [list(by)] if by else []
    groups = rows.groupby(*keys, dropna=False, sort=False) if by else [((), rows)]
    for key, grp in groups:
        labels = key if isinstance(key, tuple) else (key,)
        name = (
            ", ".join("(none)" if v is None or v != v else str(v) for v in labels)
            if by and not grp[list(by)].isna().all(axis=None)
            else "All"
        )
        r = grp[grp["metric"] == "revenue"].iloc[0]
        w = grp[grp["metric"] == "won_deals"].iloc[0]
        out.append(
            [
                name,
                *(money(r[c], currency) for c in ("p10", "p50", "p90", "mean")),
                number(w["p50"]),
                number(w["mean"], 1),
            ]
        )
    out.sort(key=lambda row: row[0] != "All")
    header = [", ".join(by) or "book", "revenue P10", "P50", "P90", "mean", "won P50", "mean"]
    return table(header, out)


def call_block(call: pd.DataFrame, currency: str = "") -> list[str]:
    """The reps' call next to the model's for the quarter (lines to print)."""
    r = call.iloc[0]
    cut = "" if r["complete"] else " (part of it: from as_of, or cut by the horizon)"
    rows = [
        ["Commit", money(r["commit"], currency), f"{int(r['commit_deals']):,} open deals"],
        ["Commit + Best Case", money(r["commit_best_case"], currency),
         f"{int(r['best_case_deals']):,} Best Case deals"],
        ["weighted pipeline", money(r["weighted_pipeline"], currency), "Omitted left out"],
        ["model P10 / P50 / P90",
         " / ".join(money(r[c]) for c in ("p10", "p50", "p90")), f"mean {money(r['mean'])}"],
        ["P(revenue >= Commit)", percent(r["p_commit"]), ""],
    ]  # fmt: skip
    if r["booked"]:
        rows.insert(0, [won_label(r), money(r["booked"], currency), "in Commit and the model"])
    return [
        f"Forecast call, {r['quarter']} ({r['start']} to {r['end']}){cut}",
        table(["", "revenue", ""], rows, left=1),
    ]


def odds_block(odds: pd.DataFrame) -> str:
    """Per stage with a loss clock: a fresh deal's odds, at 30 and 90 days, and the oldest's."""
    ages = [c for c in odds.columns if c.startswith("odds_") and c.endswith("d")]
    header = ["stage", "fresh", *(c[5:-1] + " days" for c in ages), "oldest open deal"]
    rows = []
    for r in odds.to_dict("records"):
        oldest = (
            "-"
            if np.isnan(r["oldest_days"])
            else f"{percent(r['odds_oldest'])} at {r['oldest_days']:,.0f} days"
        )
        rows.append(
            [str(r["stage"]), percent(r["conversion"]), *(percent(r[c]) for c in ages), oldest]
        )
    return table(header, rows)
