"""Parquet tables in and out, written atomically with pipesim's metadata; rows read by range.

Results are written under temporary names in the target folder and renamed
once every file is complete, so a failed or interrupted run leaves no
half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipesim.errors import InputError, ScenarioError


def unreadable(path: Path, exc: Exception) -> ScenarioError:
    """The error for a file that is not a readable Parquet file."""
    return ScenarioError(
        f"{path}: cannot be read as a Parquet file ({str(exc).splitlines()[0]}). "
        "Write it with pandas: DataFrame.to_parquet(path), or run `pipesim init DIR` "
        "for an example."
    )


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame; a clear error if it cannot be read."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise unreadable(path, exc) from None
    return table.to_pandas()


def parquet_shape(path: str | os.PathLike[str]) -> tuple[int, list[str]]:
    """Rows and columns of a Parquet file, from its footer (no row is read)."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise unreadable(Path(path), exc) from None
    return file.metadata.num_rows, list(file.schema_arrow.names)


def _with_metadata(frame: pd.DataFrame, metadata: Mapping[str, str]) -> pa.Table:
    """The table with pipesim's settings in its schema metadata.

    Each setting is a key of its own (``seed``, ``trials``, ``scenario``,
    ``pipesim_version``, ...) and all of them together are JSON under ``pipesim``.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    if metadata:
        meta.update({str(k).encode(): str(v).encode() for k, v in metadata.items()})
        meta[b"pipesim"] = json.dumps({k: str(v) for k, v in metadata.items()}).encode()
    return table.replace_schema_metadata(meta)


def check_output_folder(folder: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that cannot be written, before any work (nothing is created).

    The folder may exist (a folder) or not (its nearest existing parent must be a
    folder pipesim may write in).
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{out}: is an existing file, not a folder. Give out= a folder name (it is created "
            "if missing).",
            parameters=("out",),
        )
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        what = "cannot be created in" if parent != out else "is not writable:"
        raise InputError(
            f"{out}: {what} {parent} (not a folder you may write in). Give out= a folder "
            "you can write to.",
            parameters=("out",),
        )
    return out


def write_tables(
    folder: str | os.PathLike[str],
    frames: Mapping[str, pd.DataFrame],
    metadata: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``{name: frame}`` as ``folder/name.parquet``, all or nothing.

    Every file is first written as a hidden temporary file in ``folder``; only
    when all are complete are they renamed into place.
    """
    out = check_output_folder(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{out}: cannot be created ({err.strerror}). Give out= a folder you can write to.",
            parameters=("out",),
        ) from None
    done: list[tuple[Path, Path]] = []
    try:
        for name, frame in frames.items():
            final = out / f"{name}.parquet"
            temp = out / f".{name}.parquet.tmp-{os.getpid()}"
            done.append((temp, final))
            pq.write_table(_with_metadata(frame, metadata or {}), temp)
    except BaseException:
        for temp, _ in done:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    for temp, final in done:
        os.replace(temp, final)
    return [final for _, final in done]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The settings pipesim wrote into a results file's metadata."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InputError(
            f"{path}: cannot be read as a Parquet file ({str(exc).splitlines()[0]}). pipesim "
            "writes its results as Parquet: run the command that wrote it again."
        ) from None
    blob = meta.get(b"pipesim")
    return json.loads(blob.decode()) if blob else {}


def read_tables(folder: str | os.PathLike[str], names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Read ``folder/name.parquet`` for each name that exists (the others are left out)."""
    out = {}
    for name in names:
        path = Path(folder) / f"{name}.parquet"
        if path.is_file():
            out[name] = read_table(path)
    return out


def load_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one Parquet table (a levers or actuals file); a clear error if it cannot be read."""
    file = Path(path)
    if not file.is_file():
        raise ScenarioError(f"{file}: no such file.")
    return read_table(file)


def write_table_chunks(path: str | os.PathLike[str], chunks: Iterable[pd.DataFrame]) -> Path:
    """Write frames of the same columns as one Parquet file, one row group per frame.

    Memory stays that of one chunk; the file appears only once complete.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    writer: pq.ParquetWriter | None = None
    try:
        for frame in chunks:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(temp, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.close()
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    os.replace(temp, final)
    return final


def read_deal_rows(
    path: str | os.PathLike[str],
    start: int,
    stop: int,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows ``start:stop`` of a deals table as stored (not validated), index = row numbers.

    ``path`` is a scenario folder or its ``deals.parquet``. Only the row groups
    holding those rows and only ``columns`` (default all) are read, so memory is
    that of the rows asked for.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "deals.parquet"
    parquet = pq.ParquetFile(file)
    meta = parquet.metadata
    stop = min(stop, meta.num_rows)
    start = min(max(start, 0), stop)
    groups, first, offset = [], None, 0
    for k in range(meta.num_row_groups):
        size = meta.row_group(k).num_rows
        if offset < stop and offset + size > start:
            groups.append(k)
            first = offset if first is None else first
        offset += size
    cols = None if columns is None else list(columns)
    if groups:
        table = parquet.read_row_groups(groups, columns=cols)
        table = table.slice(start - (first or 0), stop - start)
    else:
        table = parquet.schema_arrow.empty_table()
        if cols is not None:
            table = table.select(cols)
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def read_table_chunks(
    path: str | os.PathLike[str], columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet file, one row group at a time (bounded memory)."""
    file = pq.ParquetFile(path)
    for k in range(file.num_row_groups):
        yield file.read_row_group(k, columns=columns).to_pandas()
