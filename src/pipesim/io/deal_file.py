"""Open deals kept on disk: a ``deals.parquet`` checked and read chunk by chunk.

A :class:`DealFile` holds no deal rows: it knows the file, its row count and
columns, and the totals per stage. Checking it reads the file once, a chunk at
a time; so does every simulation. Memory is that of one chunk, whatever the book.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import ScenarioError
from pipesim.io import parquet
from pipesim.scenario.deal_checks import CORE_COLUMNS, DealChecker, normalise_deals
from pipesim.scenario.scenario import DEAL_CHUNK, DEAL_COLUMNS, DealSource


class DealFile:
    """The deals of a ``deals.parquet`` file, read ``chunk`` rows at a time.

    Parameters
    ----------
    path : path
        The ``deals.parquet`` file.
    chunk : int
        Rows read at a time while checking (memory only; results never depend on it).
    """

    def __init__(self, path: str | os.PathLike[str], chunk: int = DEAL_CHUNK) -> None:
        self.path = Path(path)
        self.chunk = int(chunk)
        self.count, raw = parquet.parquet_shape(self.path)
        self._raw_columns = tuple(raw)
        self._stamp = _stamp(self.path)
        self._funnel: tuple[str, ...] | None = None
        self._columns: tuple[str, ...] = ()
        self._totals: tuple[dict[str, int], dict[str, float]] = ({}, {})

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the checked table: deal_id, stage, amount, days_in_stage, segments."""
        return self._columns

    def validated(self, funnel: Sequence[str], source: str, known: Sequence[str]) -> DealSource:
        """The file checked against ``funnel`` (one pass over it unless already done)."""
        if self._funnel == tuple(funnel):
            return self
        checker = DealChecker(source, self._raw_columns, known, funnel)
        checked = [c for c in DEAL_COLUMNS if c in self._raw_columns]  # not the segments
        for start in range(0, self.count, self.chunk):
            checker.check(self._read(start, min(self.count, start + self.chunk), checked), False)
        checker.finish(self._ids_at)
        out = DealFile.__new__(DealFile)
        out.__dict__.update(self.__dict__)
        out._funnel = tuple(funnel)
        out._columns = (*CORE_COLUMNS, *checker.texts, *checker.dated, *checker.segments)
        out._totals = (dict(checker.stage_deals), dict(checker.stage_value))
        return out

    def stage_totals(self) -> tuple[dict[str, int], dict[str, float]]:
        """Open deals and their value (sum of ``amount``) per stage."""
        return self._totals

    def rows(self, start: int, stop: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Checked, normalised rows ``start:stop`` (index: row numbers), ``columns`` only."""
        cols = list(self._columns if columns is None else columns)
        raw = self._read(start, stop, [c for c in cols if c in self._raw_columns])
        if "days_in_stage" in cols and "days_in_stage" not in raw.columns:
            raw["days_in_stage"] = 0.0
        return normalise_deals(raw[cols])

    def _read(self, start: int, stop: int, columns: list[str] | None = None) -> pd.DataFrame:
        stamp = _stamp(self.path)
        if stamp == (-1, -1):
            raise ScenarioError(
                f"{self.path}: cannot be read here (moved, deleted, or not on this machine's "
                "storage). Keep deals.parquet in place while the scenario is in use."
            )
        if stamp != self._stamp:
            raise ScenarioError(
                f"{self.path}: changed since the scenario was loaded. Load the scenario again."
            )
        return parquet.read_deal_rows(self.path, start, stop, columns)

    def _ids_at(self, rows: np.ndarray) -> np.ndarray:
        ids = [self._read(int(r), int(r) + 1, ["deal_id"])["deal_id"].iloc[0] for r in rows]
        return np.array(ids, dtype=object)

    def __repr__(self) -> str:
        return f"DealFile({str(self.path)!r}, {self.count:,} deals)"


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return (info.st_size, info.st_mtime_ns)
