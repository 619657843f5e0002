"""The deals a forecast call talks about: those that carry the quarter, and the oldest ones.

Both are picked from ``deal_odds.parquet`` (:mod:`pipesim.simulation.deal_odds`); the
terminal prints them here, the HTML report draws the first (:mod:`pipesim.reports.html_deals`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.text_table import money, percent, table

TOP = 10  # deals shown in each list
ODDS_VALUES = (
    "deal_id",
    "stage",
    "amount",
    "days_in_stage",
    "p_win",
    "p_win_quarter",
    "expected_revenue",
    "expected_revenue_quarter",
    "close_p50",
)


def segment_columns(odds: pd.DataFrame) -> list[str]:
    """The deals' segment columns in a deal odds table (the columns between stage and amount)."""
    return [c for c in odds.columns if c not in ODDS_VALUES and c != "currency"]


def top_deals(odds: pd.DataFrame, n: int = TOP) -> pd.DataFrame:
    """The ``n`` deals of highest expected revenue this quarter (ties: the book's order)."""
    values = odds["expected_revenue_quarter"].to_numpy()
    first = np.argsort(-values, kind="stable")[:n]  # rows picked, not the book sorted
    return odds.iloc[first[values[first] > 0]]


def oldest_deals(odds: pd.DataFrame, n: int = TOP) -> pd.DataFrame:
    """The ``n`` deals longest in their stage (ties: the book's order)."""
    return odds.iloc[np.argsort(-odds["days_in_stage"].to_numpy(), kind="stable")[:n]]


def label(value: object) -> str:
    """A stage or segment value as text ("-" when missing)."""
    return "-" if value is None or (isinstance(value, float) and value != value) else str(value)


def close_text(value: object) -> str:
    """A median won date as ``2027-02-14`` ("-" when the deal never wins)."""
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return "-" if pd.isna(stamp) else stamp.date().isoformat()


def carry_line(odds: pd.DataFrame, top: pd.DataFrame, quarter: str, currency: str = "") -> str:
    """One sentence: how much of the quarter's expected open-deal revenue the top deals carry."""
    total = float(odds["expected_revenue_quarter"].sum())
    mine = float(top["expected_revenue_quarter"].sum())
    share = f" ({percent(mine / total)})" if total > 0 else ""
    return (
        f"Deals that carry {quarter}: the {len(top)} of {len(odds):,} open deals with the most "
        f"expected revenue in the quarter, {money(mine, currency)}{share} of the open deals' "
        f"{money(total, currency)}"
    )


def deals_text(odds: pd.DataFrame, quarter: str, currency: str = "") -> str:
    """The two lists ``pipesim run --deal-odds`` prints."""
    if not len(odds):
        return "Deal odds: no open deal."
    segs = segment_columns(odds)
    top = top_deals(odds)
    cur = f" ({currency})" if currency else ""
    head = ["deal", "stage", *segs, f"amount{cur}", "P(win) quarter", "expected quarter"]
    head += ["P(win) horizon", "median won"]
    rows = [
        [
            str(r["deal_id"]),
            str(r["stage"]),
            *(label(r[c]) for c in segs),
            money(r["amount"]),
            percent(r["p_win_quarter"]),
            money(r["expected_revenue_quarter"]),
            percent(r["p_win"]),
            close_text(r["close_p50"]),
        ]
        for r in top.to_dict("records")
    ]
    out = [carry_line(odds, top, quarter, currency)]
    out.append(table(head, rows, left=2 + len(segs)) if rows else "(none wins in the quarter)")
    old = oldest_deals(odds)
    head = ["deal", "stage", *segs, "days in stage", f"amount{cur}", "P(win) quarter"]
    head += ["P(win) horizon", "median won"]
    rows = [
        [
            str(r["deal_id"]),
            str(r["stage"]),
            *(label(r[c]) for c in segs),
            f"{r['days_in_stage']:,.0f}",
            money(r["amount"]),
            percent(r["p_win_quarter"]),
            percent(r["p_win"]),
            close_text(r["close_p50"]),
        ]
        for r in old.to_dict("records")
    ]
    out += ["", f"The {len(old)} oldest deals (longest in their stage) and their odds"]
    out.append(table(head, rows, left=2 + len(segs)))
    return "\n".join(out)
