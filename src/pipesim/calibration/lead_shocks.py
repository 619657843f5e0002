"""Month-to-month shocks on lead volumes, shared by the market and per segment.

Whole months' creations vary more than a Poisson count around a smooth level: a
good month for the market brings more leads to every segment, and each segment has
its own. Over the whole months of the lead sample (the one
:func:`pipesim.calibration.lead_rates.arrivals_table` fits, seasonality taken out),
the log counts' month-to-month changes beyond Poisson noise (variance about 1/count)
give the shocks' variance (:mod:`pipesim.calibration.shock_variance`: robust, on
differences, so a trend or one change of level is not noise):

- ``market``: the whole book's monthly counts;
- ``segment``: each segment's log share of the month's creations (its own shock
  less the book's average of them), pooled over the segments by their shares and
  split from the market's.

0 (no shock) under :data:`~pipesim.calibration.shock_variance.MIN_MONTHS` whole
months, or when counts vary no more than chance. The engine draws, per trial and
month, a normal for the market and one per segment, and multiplies the lead rate by
``exp(sd·z − sd²/2)`` (mean 1; :func:`pipesim.kernels.trial.shocked_leads`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.lead_rates import lead_window, month_counts, seasonality, whole_months
from pipesim.calibration.shock_variance import shock_variance, split_shared


def _log_counts(y: np.ndarray, season: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log counts (seasonality out, +0.5 so an empty month is finite) and their noise."""
    return np.log((y + 0.5) / season), 1.0 / (y + 0.5)


def lead_residuals(
    deals: pd.DataFrame,
    as_of: pd.Timestamp,
    first_created: pd.Timestamp,
    window_months: int = 24,
    leads_until: pd.Timestamp | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole book's log creation counts per whole month (seasonality out), and noise."""
    lo, end = lead_window(as_of, first_created, window_months, leads_until)
    months = whole_months(lo, end)
    created = deals["created_at"]
    season = seasonality(created, end, first_created)[months.month - 1]
    return _log_counts(month_counts(created, months), season)


def lead_shocks(
    deals: pd.DataFrame,
    as_of: pd.Timestamp,
    segments: Sequence[str],
    first_created: pd.Timestamp,
    window_months: int = 24,
    *,
    leads_until: pd.Timestamp | None = None,
) -> tuple[float, float, str]:
    """``(market_sd, segment_sd, why)`` on the log scale from the deals' creation dates.

    The lead sample as in :func:`~pipesim.calibration.lead_rates.arrivals_table`
    (same ``window_months`` and ``leads_until``); ``why`` is a note for the report
    (empty when there are too few months to say anything).
    """
    lo, end = lead_window(as_of, first_created, window_months, leads_until)
    months = whole_months(lo, end)
    y = month_counts(deals["created_at"], months)
    whole = shock_variance(*lead_residuals(deals, as_of, first_created, window_months, leads_until))
    if not np.isfinite(whole):
        return 0.0, 0.0, ""
    market, own = whole, 0.0
    if segments:
        r = np.log(y + 0.5)
        parts, shares = [], []
        for _, part in deals.groupby(list(segments), dropna=False):
            yg = month_counts(part["created_at"], months)
            shares.append(float(yg.sum()))
            if yg.mean() < 5.0:  # a few leads a month: Poisson noise hides any shock
                parts.append(float("nan"))
                continue
            noise = np.maximum(1.0 / (yg + 0.5) - 1.0 / (y + 0.5), 0.0)
            parts.append(shock_variance(np.log(yg + 0.5) - r, noise))
        market, own = split_shared(whole, parts, shares)
    m_sd, s_sd = float(np.sqrt(market)), float(np.sqrt(own))
    why = (
        f"lead volumes over {len(months)} whole months: market shock sd {m_sd:.2f}"
        + (f", segment shock sd {s_sd:.2f}" if segments else "")
        + " (log scale; 0: no more than Poisson chance)"
    )
    return m_sd, s_sd, why
