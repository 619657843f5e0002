"""No change of behaviour: every output table equals the one in ``tests/golden/``.

``tests/golden/`` is written by ``python tests/same_numbers.py``; here the same commands
run again and each table must be equal (values, dtypes, column order) with the same
metadata, less the writer's version. Raw bytes are not compared: they carry the Parquet
writer's version. The files change only with a deliberate change of the model, in the
same commit that says why (so far: the layout issue wrote them; the competing-clocks
calibration rewrote the calibrate/backtest outputs, the demo's stayed).
"""

from __future__ import annotations

import pandas as pd
import pytest

from same_numbers import GOLDEN, comparable, golden_paths, normalise, paths_here, write_outputs


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("same_numbers")
    write_outputs(root)
    return root


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_the_same_files(written):
    assert _files(written) == _files(GOLDEN)
    assert len(_files(GOLDEN)) >= 40


@pytest.mark.parametrize("name", [str(p) for p in _files(GOLDEN) if p.suffix == ".parquet"])
def test_same_table_and_metadata(written, name):
    before_table, before_meta = comparable(GOLDEN / name, golden_paths())
    after_table, after_meta = comparable(written / name, paths_here(written))
    pd.testing.assert_frame_equal(after_table, before_table, check_exact=True)
    assert after_meta == before_meta


@pytest.mark.parametrize("name", [str(p) for p in _files(GOLDEN) if p.suffix != ".parquet"])
def test_same_text(written, name):
    after = normalise((written / name).read_text(), paths_here(written))
    assert after == normalise((GOLDEN / name).read_text(), golden_paths())
