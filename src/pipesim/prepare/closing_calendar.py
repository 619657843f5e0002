"""Closing paces by month of the quarter and of the year: the horizon on an operational clock.

Sales teams close more in the last month of a quarter, and some months of the year
close less (a December that stops at Christmas). The scenario may say so with three
factors (``close_month1``, ``close_month2``, ``close_month3``: the pace of the deal
clocks in the first, second and third month of a calendar quarter, relative to an
even pace) and twelve (``close_jan`` .. ``close_dec``: each calendar month's pace on
top of its quarter's), made one pace per calendar month by
:func:`pipesim.scenario.calendar.calendar_paces`. The model runs every clock on
*operational time*: a month whose factor is r lasts r x its days on the clocks, so a
deal's dwell of d operational days passes faster (more closes) in a fast month and
slower in a slow one. In a month the pace is constant, so the map between calendar
and operational time is linear inside each month; each month's operational length is
rounded to whole days, so month boundaries stay on whole days and
``day_period[int(t)]`` stays exact.

Nothing else changes: the kernels read the operational ``bounds``/``day_period`` and
the arrival rows' operational ``t0``/``t1`` (uniform inside a month either way); the
open deals' ages count the days they lived at the paces of the months they lived them.
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
