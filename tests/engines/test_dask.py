"""The Dask engine on real clusters: the local engine's bits, whatever the workers."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import ROOT
from pipesim.engines import chunked, dask_worker
from pipesim.engines import dask as dask_engine
from pipesim.engines import numba as local_engine
from pipesim.io import parquet
from pipesim.prepare.kernel_inputs import prepare, prepare_context
from pipesim.progress import Progress
from pipesim.simulation.bench import write_bench_book
from terminal import run_on_pty

distributed = pytest.importorskip("distributed")

# The workers' own numba cache, on this machine's disk (kept between test runs).
WORKER_CACHE = Path(tempfile.gettempdir()) / (
    "pipesim-worker-numba-" + hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]
)


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as c,
        distributed.Client(c) as client,
    ):
        client.wait_for_workers(2)
        yield c, client


def _worker_stats(client):
    """Per worker: steps reading the file / given scattered tables, most rows read and held."""
    return list(client.run(dask_worker.stats).values())


def _total(stats, name):
    return sum(s.get(name, 0) for s in stats)


def test_bit_identical_to_the_local_engine_reading_from_the_path(cluster, demo):
    _, client = cluster
    client.run(dask_worker.reset)
    local = pipesim.simulate(demo, trials=400, seed=11, by="region")
    dist = pipesim.simulate(demo, trials=400, seed=11, by="region", engine="dask", client=client)
    np.testing.assert_array_equal(dist.revenue, local.revenue)
    np.testing.assert_array_equal(dist.won, local.won)
    pd.testing.assert_frame_equal(dist.summary("region"), local.summary("region"))
    # The workers read deals.parquet themselves (shared storage here): nothing scattered.
    stats = _worker_stats(client)
    assert _total(stats, "path") > 0 and _total(stats, "scattered") == 0


def test_deals_unlike_the_file_are_sent_and_give_the_same_bits(cluster, demo):
    _, client = cluster
    # Same path, same row count, other amounts: the file is not these deals.
    edited = demo.replace(deals=demo.deals.assign(amount=demo.deals["amount"] * 2))
    assert edited.path == demo.path
    client.run(dask_worker.reset)
    local = pipesim.simulate(edited, trials=120, seed=4)
    dist = pipesim.simulate(edited, trials=120, seed=4, engine="dask", client=client)
    np.testing.assert_array_equal(dist.revenue, local.revenue)
    stats = _worker_stats(client)
    assert _total(stats, "scattered") > 0 and _total(stats, "path") == 0


CHUNK = 700  # 3,000 demo deals: 5 chunks, more than a worker caches


def test_deal_chunks_read_by_the_workers_give_the_local_bits(cluster, demo):
    """A book on disk in 5 chunks x 3 blocks of trials: each worker reads one chunk at a time."""
    _, client = cluster
    book = pipesim.load_scenario(demo.path, deals_in_memory=False, chunk=CHUNK)
    assert not book.deals_in_memory
    expected = local_engine.run(prepare(demo, ("region",), chunk=CHUNK), 400, 11)
    client.run(dask_worker.reset)
    context = prepare_context(book, ("region",))
    rev, won = dask_engine.run(book, context, 400, 11, client=client, shard=150, deal_chunk=CHUNK)
    np.testing.assert_array_equal(rev, expected[0])
    np.testing.assert_array_equal(won, expected[1])
    stats = _worker_stats(client)
    assert _total(stats, "path") == 5 * 3 and _total(stats, "scattered") == 0
    for worker in stats:
        assert worker.get("max_read", 0) <= CHUNK
        assert worker.get("max_held", 0) <= dask_worker.CHUNK_CACHE * CHUNK < demo.deal_count


def test_fast_path_steps_give_the_fast_engines_bits(cluster, demo):
    """engine dask-fast: the fast path chunk by chunk on the workers, read from the path."""
    _, client = cluster
    book = pipesim.load_scenario(demo.path, deals_in_memory=False, chunk=CHUNK)
    context = prepare_context(book, ("region",))
    expected = chunked.run(book, context, 300, 5, chunk=CHUNK, engine="fast")
    client.run(dask_worker.reset)
    rev, won = dask_engine.run(
        book, context, 300, 5, client=client, shard=120, deal_chunk=CHUNK, winners_only=True
    )
    np.testing.assert_array_equal(rev, expected[0])
    np.testing.assert_array_equal(won, expected[1])
    assert _total(_worker_stats(client), "path") == 5 * 3
    # Not the per-deal engine's bits, but its law: whole-book mean within Z = 4.5
    # standard errors of the difference (300 trials each).
    other = local_engine.run(prepare(demo, ("region",), chunk=CHUNK), 300, 6)[0]
    a, b = rev[:, :, 0].sum(axis=1), other[:, :, 0].sum(axis=1)
    assert abs(a.mean() - b.mean()) <= 4.5 * np.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 300)


def test_engine_dask_fast_gives_engine_fast_bits(cluster, demo):
    _, client = cluster
    a = pipesim.simulate(demo, trials=200, seed=2, by="region", engine="dask-fast", client=client)
    b = pipesim.simulate(demo, trials=200, seed=2, by="region", engine="fast")
    np.testing.assert_array_equal(a.revenue, b.revenue)
    np.testing.assert_array_equal(a.won, b.won)


def test_open_deals_odds_shocks_give_the_local_bits_on_the_cluster(cluster, demo):
    # Each deal's stage-entry month and segment pick its odds shock on the workers too.
    _, client = cluster
    arrivals = demo.arrivals.assign(segment_shock_sd=0.2)
    sc = pipesim.make_scenario(
        demo.stages, demo.deals, arrivals, as_of=demo.as_of, horizon_months=6,
        market_shock_sd=0.4, shock_persistence=0.5, calibrated=True,
    )  # fmt: skip
    for engine, local in (("dask", "numba"), ("dask-fast", "fast")):
        a = pipesim.simulate(sc, trials=200, seed=5, engine=engine, client=client).revenue
        np.testing.assert_array_equal(
            a, pipesim.simulate(sc, trials=200, seed=5, engine=local).revenue
        )


def test_deals_timed_by_their_close_dates_give_the_local_bits_on_the_cluster(cluster, tmp_path):
    # Dated and clocked deals interleaved over chunks of 7, odds shocks on: after every
    # chunk's clocked deals a step per chunk adds its dated ones, sent from here or read
    # by the workers from the folder (shared storage), as prepare() orders them.
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_dated_deals import dated

    from pipesim.io.scenario_folder import load_scenario, write_scenario

    _, client = cluster
    sc = dated([pd.Timestamp("2027-01-11"), pd.NaT, pd.NaT] * 10, n=30, market_shock_sd=0.3)
    write_scenario(tmp_path / "sc", sc)
    expected = local_engine.run(prepare(sc, chunk=7), 96, 4)
    for book in (sc, load_scenario(tmp_path / "sc")):
        client.run(dask_worker.reset)
        rev, won = dask_engine.run(
            book, prepare_context(book), 96, 4, client=client, shard=40, deal_chunk=7
        )
        np.testing.assert_array_equal(rev, expected[0])
        np.testing.assert_array_equal(won, expected[1])
    stats = _worker_stats(client)
    assert _total(stats, "path") > 0  # the folder's deals read by the workers
    assert prepare(sc, chunk=7).dated.rows == 10 and won.sum() > 0


def test_a_book_on_disk_changed_since_loading_is_a_clear_error(cluster, demo_copy):
    _, client = cluster
    book = pipesim.load_scenario(demo_copy, deals_in_memory=False, chunk=CHUNK)
    context = prepare_context(book)
    deals = pd.read_parquet(demo_copy / "deals.parquet")
    deals["amount"] *= 2
    deals.to_parquet(demo_copy / "deals.parquet")
    with pytest.raises(pipesim.PipesimError, match="changed since the scenario was loaded"):
        dask_engine.run(book, context, 50, 1, client=client, deal_chunk=CHUNK)


def test_deal_chunks_sent_from_memory_give_the_local_bits(cluster, demo):
    _, client = cluster
    edited = demo.replace(deals=demo.deals.iloc[::-1].reset_index(drop=True))
    expected = local_engine.run(prepare(edited, ("region",), chunk=CHUNK), 300, 3)
    client.run(dask_worker.reset)
    context = prepare_context(edited, ("region",))
    rev, won = dask_engine.run(edited, context, 300, 3, client=client, shard=100, deal_chunk=CHUNK)
    np.testing.assert_array_equal(rev, expected[0])
    np.testing.assert_array_equal(won, expected[1])
    stats = _worker_stats(client)
    assert _total(stats, "scattered") == 5 * 3 and _total(stats, "path") == 0
    for worker in stats:
        assert worker.get("max_held", 0) <= CHUNK


def test_shard_size_and_worker_count_change_no_bit(cluster, demo):
    c, client = cluster
    context = prepare_context(demo, ("region",))
    two = dask_engine.run(demo, context, 300, 7, client=client, shard=37, deal_chunk=CHUNK)
    c.scale(1)
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(client.scheduler_info()["workers"]) == 1
    try:
        one = dask_engine.run(demo, context, 300, 7, client=client, shard=100, deal_chunk=CHUNK)
    finally:
        c.scale(2)
        client.wait_for_workers(2, timeout=120)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


class _KillOnFirstShard(Progress):
    """Kills a worker when the first step comes back: the busiest one, or (``holder``)
    the only worker holding a deal chunk the client sent."""

    def __init__(self, total, client, holder=False):
        super().__init__(total, enabled=False)
        self.client = client
        self.holder = holder
        self.killed: list[int] = []

    def update(self, trials):
        if not self.killed:
            if self.holder:
                holders = self.client.who_has().items()
                held = [w for key, w in holders if key.startswith("DealTable-")]
                alone = [w[0] for w in held if len(w) == 1]
                assert alone, "no deal chunk held by one worker only"
                victim = alone[-1]
            else:
                busy = {w: len(keys) for w, keys in self.client.processing().items()}
                victim = max(busy, key=lambda w: busy[w])
                assert busy[victim] > 0, "no step left to lose"
            pid = self.client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)
        super().update(trials)


@pytest.mark.parametrize("sent", [False, True], ids=["read-from-path", "sent-from-memory"])
def test_a_worker_killed_mid_run_still_gives_the_identical_answer(cluster, tmp_path, caplog, sent):
    _, client = cluster
    # A book big enough that each step takes milliseconds, so that steps are still
    # queued on both workers when the first one comes back; two deal chunks, so
    # steps are chained when the worker dies.
    book = pipesim.load_scenario(write_bench_book(tmp_path / "book", 100_000))
    if sent:  # not the file's deals: each chunk is sent to one worker, and lost with it
        book = book.replace(deals=book.deals.assign(amount=book.deals["amount"] + 1))
    expected = local_engine.run(prepare(book, chunk=50_000), 1200, 23)
    watcher = _KillOnFirstShard(1200, client, holder=sent)
    caplog.set_level(logging.INFO, logger="pipesim.engines.dask")
    rev, won = dask_engine.run(
        book,
        prepare_context(book),
        1200,
        23,
        client=client,
        shard=20,
        deal_chunk=50_000,
        progress=watcher,
    )
    assert watcher.killed and watcher.done == 1200
    np.testing.assert_array_equal(rev, expected[0])
    np.testing.assert_array_equal(won, expected[1])
    assert ("sent again" in caplog.text) == sent
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it for the next tests


def test_default_engine_starts_and_stops_its_own_local_cluster(demo):
    local = pipesim.simulate(demo, trials=60, seed=2)
    dist = pipesim.simulate(demo, trials=60, seed=2, engine="dask")
    np.testing.assert_array_equal(dist.revenue, local.revenue)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args, env=None, log=None):
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dask")), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc):
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_cli_against_dask_scheduler_and_worker_processes(tmp_path, demo):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = []
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115
    try:
        procs.append(
            _dask(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
                env=env,
                log=log,
            )
        )
        for _ in range(2):
            worker_env = {**env, "NUMBA_CACHE_DIR": str(WORKER_CACHE)}
            procs.append(
                _dask(
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    env=worker_env,
                    log=log,
                )
            )
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp_path / "out"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipesim.cli",
                "run",
                str(demo.path),
                "--trials",
                "300",
                "--seed",
                "5",
                "--by",
                "region",
                "--out",
                str(out),
                "--engine",
                "dask",
                "--address",
                address,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        # The same through DASK_SCHEDULER_ADDRESS.
        out_env = tmp_path / "out_env"
        run2 = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipesim.cli",
                "run",
                str(demo.path),
                "--trials",
                "300",
                "--seed",
                "5",
                "--by",
                "region",
                "--out",
                str(out_env),
                "--engine",
                "dask",
                "--quiet",
            ],
            env={**env, "DASK_SCHEDULER_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run2.returncode == 0, run2.stderr
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()
    local = pipesim.simulate(demo, trials=300, seed=5, by="region")
    pipesim.write_results(local, tmp_path / "local")
    expected = pd.read_parquet(tmp_path / "local" / "trials.parquet")
    for folder in (out, out_env):
        pd.testing.assert_frame_equal(pd.read_parquet(folder / "trials.parquet"), expected)
        meta = parquet.read_metadata(folder / "trials.parquet")
        assert meta["engine"] == "dask"
    # The workers compiled into (or loaded from) their own cache folders.
    assert any(WORKER_CACHE.rglob("*.nbi"))


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipesim.cli",
            "run",
            "--trials",
            "10",
            "--engine",
            "dask",
            "--address",
            address,
            "--out",
            str(tmp_path / "o"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 4  # ClusterError: not bad data
    assert run.stderr.startswith(f"Error: --address '{address}': cannot reach the Dask scheduler")
    assert "leave out --address and DASK_SCHEDULER_ADDRESS" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "o").exists()


def test_deal_chunks_and_step_placement_come_from_the_book():
    assert dask_engine.deal_chunks(0, 1000) == [(0, 0)]
    assert dask_engine.deal_chunks(2500, 1000) == [(0, 1000), (1000, 2000), (2000, 2500)]
    # At least as many chunks as workers: chunk c on worker c mod W, whatever the block.
    where = dask_engine._placement(["a", "b"], 5)
    assert [where(b, c)[0] for b in (0, 3) for c in range(5)] == list("ababa") * 2
    # Fewer chunks: chunk c's W // C workers take its blocks in turn.
    where = dask_engine._placement(list("abcdef"), 2)
    assert [where(b, 0)[0] for b in range(4)] == list("abca")
    assert [where(b, 1)[0] for b in range(4)] == list("defd")
    assert dask_engine._placement([], 3)(0, 0) is None


@pytest.mark.slow
def test_ctrl_c_stops_a_dask_run_and_writes_nothing(tmp_path):
    book = write_bench_book(tmp_path / "book", 300_000)
    out = tmp_path / "out"
    code, text, after_signal = run_on_pty(
        [str(book), "--trials", "20000", "--engine", "dask"],
        out,
        interrupt_after=lambda t: b"trial" in t,
    )
    assert "simulating" in text and "trial" in text  # the bar was drawn
    assert code == 130
    assert "Interrupted: no results written." in text
    assert "Traceback" not in text
    # Steps still running are cancelled and the local cluster is shut down.
    assert after_signal < 20.0
    assert not out.exists() or not any(out.iterdir())
