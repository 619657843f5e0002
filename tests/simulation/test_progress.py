"""Progress bar on long runs at a terminal only; Ctrl-C stops promptly and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import pipesim
from conftest import ROOT
from pipesim.engines import numba as numba_engine
from pipesim.prepare.kernel_inputs import prepare
from pipesim.simulation.bench import write_bench_book
from terminal import run_on_pty

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_blocked_run_gives_the_same_bits_as_one_call(demo):
    prepared = prepare(demo, ("region",))
    whole = numba_engine.run(prepared, 90, seed=8)
    for size in (1, 7, 32, 90, 500):
        blocked = numba_engine.run_blocks(prepared, 90, seed=8, block_size=size)
        np.testing.assert_array_equal(blocked[0], whole[0])
        np.testing.assert_array_equal(blocked[1], whole[1])


@pytest.fixture(scope="module")
def big_book(tmp_path_factory):
    # Large enough that a run lasts well over the bar's 2 s delay on 2 cores.
    return write_bench_book(tmp_path_factory.mktemp("book") / "book", 300_000)


@pytest.mark.slow
def test_bar_on_a_terminal_then_ctrl_c_stops_promptly_and_writes_nothing(big_book, tmp_path):
    out = tmp_path / "out"
    code, text, after_signal = run_on_pty(
        [str(big_book), "--trials", "20000"], out, interrupt_after=lambda t: b"trial" in t
    )
    assert "simulating" in text and "trial" in text  # tqdm's bar was drawn
    assert code == 130
    assert "Interrupted: no results written." in text
    assert "Traceback" not in text
    # One block of trials is ~0.3 s of work on one core; allow for a loaded machine.
    assert after_signal < 5.0
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_no_bar_with_quiet_or_without_a_terminal(big_book, tmp_path):
    code, text, _ = run_on_pty([str(big_book), "--trials", "1000", "--quiet"], tmp_path / "a")
    assert code == 0, text
    assert "simulating" not in text
    piped = subprocess.run(
        [sys.executable, "-m", "pipesim.cli", "run", str(big_book), "--trials", "1000",
         "--out", str(tmp_path / "b")],
        env=ENV, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert "simulating" not in piped.stderr
    assert (tmp_path / "b" / "summary.parquet").is_file()


def test_progress_counts_every_trial(demo):
    from pipesim.progress import Progress

    counter = Progress(130, enabled=False)
    prepared = prepare(demo)
    numba_engine.run_blocks(prepared, 130, seed=1, progress=counter, block_size=40)
    assert counter.done == 130
    assert pipesim.simulate(demo, trials=5, progress=False).trials_count == 5
