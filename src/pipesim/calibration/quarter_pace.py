"""Month-of-quarter closing paces from the wins' dates (the quarter-end rush).

Over the complete calendar quarters before as_of that hold wins (the last
:data:`MAX_QUARTERS` at most), each month's wins are compared with what an even
pace inside its quarter would give (the quarter's wins spread by days), so a
trend from quarter to quarter is not mistaken for a rush: the pace of month j of
the quarter is observed / expected, summed over the quarters. The paces are used
only with at least :data:`MIN_QUARTERS` quarters and when they differ from 1 more
than chance allows: a chi-square test (2 degrees of freedom) whose variance is
widened by the dispersion of the quarters around the fitted paces (drift makes
monthly counts vary more than Poisson), at level :data:`LEVEL`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MIN_QUARTERS = 4
MAX_QUARTERS = 8
LEVEL = 0.01


def quarter_paces(won_at: pd.Series, cut: pd.Timestamp) -> tuple[tuple[float, float, float], str]:
    """``(paces, why)``: the paces of months 1-3 of a quarter ((1, 1, 1) when not used).

    ``won_at``: the wins' dates (before ``cut``). ``why`` says what was found, for the
    calibration report (empty when there are too few quarters to say anything).
    """
    even = (1.0, 1.0, 1.0)
    last = cut.to_period("Q") - 1  # the last complete quarter
    quarters = won_at[won_at < cut].dt.to_period("Q")
    seen = sorted(q for q in quarters.unique() if q <= last)[-MAX_QUARTERS:]
    if len(seen) < MIN_QUARTERS:
        return even, ""
    months = won_at.dt.to_period("M")
    observed = np.zeros((len(seen), 3))
    expected = np.zeros((len(seen), 3))
    for i, q in enumerate(seen):
        ms = pd.period_range(q.start_time, q.end_time, freq="M")
        counts = np.array([(months == m).sum() for m in ms], dtype=float)
        days = np.array([m.days_in_month for m in ms], dtype=float)
        observed[i] = counts
        expected[i] = counts.sum() * days / days.sum()
    o, e = observed.sum(axis=0), expected.sum(axis=0)
    pace = o / e
    fitted = expected * pace
    dof = 2 * len(seen) - 2
    resid = ((observed - fitted) ** 2 / np.maximum(fitted, 1e-9)).sum()
    phi = max(float(resid) / dof, 1.0)
    x2 = float(((o - e) ** 2 / e).sum()) / phi
    p = float(stats.chi2.sf(x2, 2))
    shown = ", ".join(f"{v:.2f}" for v in pace)
    if p >= LEVEL:
        return even, (
            f"wins by month of quarter over {len(seen)} quarters: paces {shown}, within chance "
            f"(p = {p:.2f}): not used"
        )
    pace = pace * 3.0 / pace.sum()  # a mean of 1, as the scenario holds them
    return (float(pace[0]), float(pace[1]), float(pace[2])), (
        f"wins by month of quarter over {len(seen)} quarters: paces {shown} (p = {p:.1g}): the "
        "clocks run at these paces in the first, second and third month of each quarter"
    )
