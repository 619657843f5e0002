"""One seed, one answer: whatever the threads, blocks and chunks; common random numbers."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.engines import numba as numba_engine
from pipesim.prepare.kernel_inputs import prepare


@pytest.fixture
def one_thread():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def test_same_seed_same_bits_on_one_and_two_threads(demo, one_thread):
    assert numba.config.NUMBA_NUM_THREADS >= 2, "needs 2 threads to compare"
    numba.set_num_threads(2)
    two = pipesim.simulate(demo, trials=500, seed=42, by="region")
    numba.set_num_threads(1)
    one = pipesim.simulate(demo, trials=500, seed=42, by="region")
    np.testing.assert_array_equal(one.revenue, two.revenue)
    np.testing.assert_array_equal(one.won, two.won)
    pd.testing.assert_frame_equal(one.summary("region"), two.summary("region"))


def test_block_and_chunk_sizes_do_not_change_bits(demo):
    prepared = prepare(demo, ("product_line",))
    base = numba_engine.run(prepared, 64, seed=3)
    for block, chunk in ((1, 1), (7, 100), (64, 1 << 20)):
        other = numba_engine.run(prepared, 64, seed=3, block=block, chunk=chunk)
        np.testing.assert_array_equal(base[0], other[0])
        np.testing.assert_array_equal(base[1], other[1])


def test_deals_added_chunk_by_chunk_give_the_same_bits(demo):
    """Deal chunks in order, then the arrivals: the whole book's bits (streaming, shards)."""
    prepared = prepare(demo, ("region",))
    rev0, won0 = numba_engine.run(prepared, 64, seed=5)
    rev, won = np.zeros_like(rev0), np.zeros_like(won0)
    none = prepared.arrivals.take(0, 0)
    n = prepared.deals.rows
    for start in range(0, n, 37):
        chunk = prepared.deals.take(start, start + 37)
        numba_engine.accumulate(prepared, chunk, none, 5, 0, rev, won)
    numba_engine.accumulate(prepared, prepared.deals.take(0, 0), prepared.arrivals, 5, 0, rev, won)
    np.testing.assert_array_equal(rev, rev0)
    np.testing.assert_array_equal(won, won0)


def test_trials_are_a_prefix_of_a_longer_run(demo):
    prepared = prepare(demo)
    short = numba_engine.run(prepared, 50, seed=9)
    long = numba_engine.run(prepared, 200, seed=9)
    tail = numba_engine.run(prepared, 150, seed=9, first_trial=50)
    np.testing.assert_array_equal(short[0], long[0][:50])
    np.testing.assert_array_equal(tail[0], long[0][50:])


def test_different_seeds_differ(demo):
    a = pipesim.simulate(demo, trials=50, seed=1).revenue
    b = pipesim.simulate(demo, trials=50, seed=2).revenue
    assert not np.array_equal(a, b)


def test_adding_a_deal_leaves_the_other_deals_draws_alone():
    stages = stages_frame([0.5, 0.6, 0.7], dwell_days=20.0, dwell_cv=0.7)
    rng = np.random.default_rng(0)
    deals = deals_frame(
        rng.choice(["S1", "S2", "S3"], 300),
        rng.uniform(1, 100, 300).round(2),
        ages=rng.uniform(0, 30, 300),
    )
    extra = pd.DataFrame(
        {"deal_id": ["new"], "stage": ["S3"], "amount": [1e6], "days_in_stage": [0.0]}
    )
    without = pipesim.simulate(build(stages, deals), trials=400, seed=4)
    with_one = pipesim.simulate(
        build(stages, pd.concat([deals, extra], ignore_index=True)), trials=400, seed=4
    )
    diff = with_one.revenue[:, :, 0] - without.revenue[:, :, 0]
    won_diff = with_one.won[:, :, 0] - without.won[:, :, 0]
    # Per trial, the only change is the new deal: +1e6 in one month, or nothing.
    assert set(np.unique(won_diff)) <= {0.0, 1.0}
    assert (won_diff.sum(axis=1) <= 1).all()
    np.testing.assert_allclose(diff, 1e6 * won_diff, atol=1e-6)
    assert 0.55 < won_diff.sum() / 400 < 0.85  # it wins with p = 0.7


def test_threads_via_environment_give_identical_files(tmp_path):
    """Two processes, NUMBA_NUM_THREADS=1 and 2: byte-identical numbers in summary.parquet."""
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pipesim.cli",
                "run",
                "--trials",
                "300",
                "--seed",
                "7",
                "--out",
                str(out),
                "--by",
                "region",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        outs.append(out)
    for name in ("summary", "trials"):
        a = pd.read_parquet(outs[0] / f"{name}.parquet")
        b = pd.read_parquet(outs[1] / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
