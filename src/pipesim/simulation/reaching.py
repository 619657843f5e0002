"""Whether revenue reaches a target: compared at cent precision, as a planner counts money."""

from __future__ import annotations

import numpy as np


def reaches(revenue: np.ndarray | float, target: float) -> np.ndarray:
    """``revenue`` rounded to cents ``>= target``, element by element.

    Sums of amounts in binary floating point land a hair off the decimal total
    (0.1 + 0.2 is 0.30000000000000004, and sixty wins of 1,234.56 need not add
    up to 74,073.6 exactly): rounded to cents first, a trial that books the
    target to the cent meets it.
    """
    return np.round(np.asarray(revenue, dtype=np.float64), 2) >= target


def share_reaching(revenue: np.ndarray, target: float) -> float:
    """The share of trials whose revenue reaches ``target`` (see :func:`reaches`)."""
    return float(np.mean(reaches(revenue, target)))
