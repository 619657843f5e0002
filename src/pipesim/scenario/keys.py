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
    """The key of each deal: :func:`stable_hash` of its ``deal_id`` written as text.

    Integer ids are keyed by a numba kernel writing their decimal text straight
    into the hash (no string per deal); text ids are hashed as they are; any
    other id goes through ``str``. All three give the same key for the same text.
    """
    if isinstance(ids, pd.Series):  # (pandas' own objects: Timestamps stay Timestamps)
        values = ids.to_numpy() if ids.dtype.kind in "iuf" else ids.astype(object).to_numpy()
    else:
        values = np.asarray(ids)
    if values.size == 0:
        return np.empty(0, dtype=np.uint64)
    if values.dtype.kind == "i" or (values.dtype.kind == "u" and values.max() < 2**63):
        from pipesim.kernels.keys import int_text_keys

        out = np.empty(values.size, dtype=np.uint64)
        int_text_keys(values.astype(np.int64), out)
        return out
    values = values.astype(object)
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind == "integer":  # Python ints (a table in memory holds ids as objects)
        try:
            return deal_keys(values.astype(np.int64))
        except OverflowError:
            pass
    if kind != "string":
        values = np.array([str(v) for v in values], dtype=object)
    return stable_hash(values)
