"""Stable 64-bit keys: the same text gives the same key in every run, on every machine.

A deal's random streams are keyed by its ``deal_id`` as text (the integer id 5
and the text "5" share a key), so keys must never change between versions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def stable_hash(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """64-bit keys of strings that do not change between runs or machines."""
    values = np.asarray(labels, dtype=object)
    if values.size == 0:
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(values, categorize=False).astype(np.uint64)


def deal_keys(ids: pd.Series | np.ndarray) -> np.ndarray:
    """The key of each deal: :func:`stable_hash` of its ``deal_id`` written as text."""
    values = pd.Series(np.asarray(ids, dtype=object))
    return stable_hash(values.map(str).to_numpy(dtype=object))
