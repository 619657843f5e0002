"""Plain-text tables for the terminal: aligned columns, thousands separators, currency."""

from __future__ import annotations

from collections.abc import Sequence


def number(value: float, decimals: int = 0) -> str:
    """``1,234,567``: thousands separators, ``decimals`` places."""
    return f"{value:,.{decimals}f}"


def percent(value: float) -> str:
    """``12%``; a chance above 0 that rounds to 0 reads ``<1%`` (not "never")."""
    return "<1%" if 0 < value < 0.005 else f"{value:.0%}"


def money(value: float, currency: str = "") -> str:
    """``1,234,567 EUR``: thousands separators and the currency."""
    return f"{value:,.0f}" + (f" {currency}" if currency else "")


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    left: int = 1,
    right: Sequence[bool] | None = None,
) -> str:
    """Align columns: the first ``left`` columns to the left, the rest to the right.

    ``right`` (one flag per column), when given, says which columns align right instead.
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    flush = list(right) if right is not None else [i >= left for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [
            str(c).rjust(w) if flush[i] else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
