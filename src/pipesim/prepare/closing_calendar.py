"""Calendar effects on closing: the horizon on an operational clock, and booking slips.

Sales teams close more in the last month of a quarter. The scenario may say so in two
ways. Paces (``close_month1``, ``close_month2``, ``close_month3``: the pace of the deal
clocks in the first, second and third month of a calendar quarter, relative to an even
pace; one per calendar month by :func:`pipesim.scenario.calendar.calendar_paces`): the
model runs every clock on *operational time*: a month whose factor is r lasts r x its
days on the clocks, so a deal's dwell of d operational days passes faster (more closes)
in a fast month and slower in a slow one. In a month the pace is constant, so the map
between calendar and operational time is linear inside each month; each month's
operational length is rounded to whole days, so month boundaries stay on whole days and
``day_period[int(t)]`` stays exact.

Nothing else changes: the kernels read the operational ``bounds``/``day_period`` and
the arrival rows' operational ``t0``/``t1`` (uniform inside a month either way); the
open deals' ages count the days they lived at the paces of the months they lived them.

Slips (``slip_month1``, ``slip_month2``; ``slip_jan`` .. ``slip_dec``, what ``calibrate``
estimates): the clocks run on the calendar and a share of the wins due in a month is
booked later, held from a quarter's first two months to its last, or moved to the next
month (:func:`slip_table`, :func:`pipesim.kernels.trial.booked`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def month_paces(periods: Sequence[str], paces: np.ndarray) -> np.ndarray:
    """Each horizon period's pace (``YYYY-MM`` labels), from twelve by calendar month."""
    return np.array([paces[int(p[5:7]) - 1] for p in periods])


def operational_bounds(bounds: np.ndarray, paces: np.ndarray) -> np.ndarray:
    """Month boundaries on the operational clock: each month pace x its days, rounded, >= 1."""
    days = np.diff(bounds)
    length = np.maximum(np.rint(days * paces), 1.0)
    return np.concatenate([[0.0], np.cumsum(length)])


def to_operational(t: np.ndarray, bounds: np.ndarray, op_bounds: np.ndarray) -> np.ndarray:
    """Calendar days after as_of -> operational days (linear inside each month)."""
    return np.interp(t, bounds, op_bounds)


def slip_table(
    periods: Sequence[str],
    rush: tuple[float, ...] | None,
    month: tuple[float, ...] | None,
    year_start: int = 1,
) -> np.ndarray:
    """The booking slips of the horizon's periods (``YYYY-MM`` labels), [3, period].

    No columns when there are none. Row 0: the chance that a win due in the period is
    held to its quarter's last month (``rush`` for the first and second month of a
    quarter, 0 for the third; quarters of the fiscal year starting in month
    ``year_start``); row 1: that month's index (past the horizon: the win leaves it);
    row 2: the chance that a win due in (or held to) the period is booked the period
    after (``month``, January first). See :func:`pipesim.kernels.trial.booked`.
    """
    if rush is None and month is None:
        return np.zeros((3, 0))
    out = np.zeros((3, len(periods)))
    for k, label in enumerate(periods):
        calendar = int(label[5:7])
        j = (calendar - year_start) % 3  # month of the quarter, 0 first
        out[1, k] = k + 2 - j
        if rush is not None and j < 2:
            out[0, k] = rush[j]
        if month is not None:
            out[2, k] = month[calendar - 1]
    return out
