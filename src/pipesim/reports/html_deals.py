"""The HTML report's table of the deals that carry the current quarter (from deal_odds.parquet)."""

from __future__ import annotations

import pandas as pd

from pipesim.reports.html_parts import esc, html_table, money
from pipesim.reports.top_deals import carry_line, close_text, label, segment_columns, top_deals
from pipesim.text_table import percent

TOP_HTML = 20  # rows of the table


def deals_section(odds: pd.DataFrame, settings: dict[str, str], currency: str) -> str:
    """The top deals of the quarter, most expected revenue first (every name escaped)."""
    quarter = settings.get("deal_odds_quarter", "the current quarter")
    top = top_deals(odds, TOP_HTML)
    segs = segment_columns(odds)
    rows = [
        [
            r["deal_id"],
            r["stage"],
            *(label(r[c]) for c in segs),
            money(r["amount"]),
            f"{r['days_in_stage']:,.0f}",
            percent(r["p_win_quarter"]),
            money(r["expected_revenue_quarter"], currency),
            percent(r["p_win"]),
            close_text(r["close_p50"]),
        ]
        for r in top.to_dict("records")
    ]
    head = ["deal", "stage", *segs, "amount", "days in stage", "P(win) in quarter"]
    head += ["expected in quarter ▼", "P(win) in horizon", "median won date"]
    start, end = settings.get("deal_odds_quarter_start", ""), settings.get("deal_odds_quarter_end")
    note = (
        f'<p class="note">{esc(carry_line(odds, top, quarter, currency))}. Quarter: '
        f"{esc(start)} – {esc(end)}. Each deal's odds are counted over the same trials as the "
        "rest of this report: P(win) is the share of trials in which it is won and booked (in "
        "the quarter, or inside the horizon), the expected revenue its mean booked value in "
        "the company currency, the median won date the middle of its won dates when it wins. "
        "Every open deal is in deal_odds.parquet.</p>"
    )
    return html_table(head, rows, 2 + len(segs)) + note
