"""The generic history format: deals CSV (+ optional events CSV), as documented in the README."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pipesim.calibration.history import History, make_history, read_csv


def read(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None,
    stages: Sequence[str] | None,
) -> History:
    """Read a deals CSV in the generic format, and its events CSV when given."""
    deals = read_csv(path)
    ev = read_csv(events) if events is not None else None
    return make_history(deals, ev, stages=stages, source=str(path))
