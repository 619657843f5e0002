"""Exceptions and warnings that tell the user what went wrong and what to do."""

from __future__ import annotations


class PipesimError(ValueError):
    """A problem with the user's input: the message names where it is and the fix."""


class ScenarioError(PipesimError):
    """A scenario table (stages, deals, arrivals, scenario) is invalid."""


class PipesimWarning(UserWarning):
    """Something pipesim can run with, but that the user should know about."""


def show_rows(values: object, rows: object, limit: int = 5) -> str:
    """Format the first offending rows as ``row 3 ('x'), row 7 ('y')`` for a message.

    ``rows`` are 0-based positions in the table; they are shown 1-based, as a
    spreadsheet would number the data rows.
    """
    pairs = list(zip(list(rows), list(values), strict=True))  # type: ignore[call-overload]
    shown = ", ".join(
        f"row {int(r) + 1} ({getattr(v, 'item', lambda v=v: v)()!r})" for r, v in pairs[:limit]
    )
    more = len(pairs) - limit
    if more > 0:
        shown += f" and {more} more"
    return shown
