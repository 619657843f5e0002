"""``numba.njit`` with pipesim's options, set in one place."""

from __future__ import annotations

from typing import Any

from numba import njit


def jit(fn: Any = None, *, parallel: bool = False, inline: bool = False) -> Any:
    """``numba.njit`` with pipesim's options, set here once (cached to disk, no GIL).

    ``inline`` inlines a function into its callers at numba's level: for small
    functions that take arrays, so that no reference counting is paid per call.
    """
    options: dict[str, Any] = {
        "cache": True,
        "nogil": True,
        "error_model": "numpy",
        "parallel": parallel,
        "inline": "always" if inline else "never",
    }
    if fn is None:
        return lambda f: njit(f, **options)
    return njit(fn, **options)
