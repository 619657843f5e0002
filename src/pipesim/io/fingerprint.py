"""A scenario's fingerprint: a short, stable hash of its tables' content and its settings.

Every results file carries it (``scenario_fingerprint`` in its metadata), so a report can
tell the files of one run from those another scenario left in the same folder. Two
scenarios with the same stages, deals, arrivals, rates, ``as_of``, horizon and currency have
the same fingerprint wherever they were read from; the name and the folder do not count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipesim.scenario.scenario import Scenario

DIGEST_BYTES = 8  # 16 hex digits: two scenarios in one folder will not collide
FILE_BLOCK = 1 << 22


def _table_bytes(frame: pd.DataFrame) -> bytes:
    """The table's content as Arrow IPC bytes: values and types, no pandas metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while block := file.read(FILE_BLOCK):
            yield block


def scenario_fingerprint(scenario: Scenario) -> str:
    """16 hex digits naming the scenario's content (tables, ``as_of``, horizon, currency).

    A fiscal calendar other than the calendar year in months, ``won.parquet`` and
    ``quotas.parquet`` count when the scenario has them.

    A book kept on disk (a ``deals.parquet`` over ``DEAL_CHUNK`` rows) counts by its
    file's bytes, a book in memory by its rows.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    settings = {
        "as_of": scenario.as_of.isoformat(),
        "horizon_months": int(scenario.horizon_months),
        "currency": scenario.currency,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, frame in (("stages", scenario.stages), ("arrivals", scenario.arrivals)):
        digest.update(name.encode())
        digest.update(_table_bytes(frame))
    if not scenario.fiscal.is_default:  # counted only when set: older fingerprints stay
        digest.update(f"fiscal|{scenario.fiscal.year_start}|{scenario.fiscal.weeks}".encode())
    for name in ("won", "quotas"):
        table = getattr(scenario, name)
        if table is not None:
            digest.update(name.encode())
            digest.update(_table_bytes(table))
    if scenario.fx is not None:  # exchange rates (none: the fingerprint of before)
        digest.update(b"fx")
        digest.update(_table_bytes(scenario.fx))
    digest.update(b"deals")
    source = scenario.deal_source
    path = getattr(source, "path", None)
    if source is None:
        assert scenario.deal_table is not None
        digest.update(_table_bytes(scenario.deal_table))
    elif isinstance(path, Path) and path.is_file():
        for block in _file_blocks(path):
            digest.update(block)
    else:
        for chunk in scenario.deal_chunks():
            digest.update(_table_bytes(chunk))
    return digest.hexdigest()
