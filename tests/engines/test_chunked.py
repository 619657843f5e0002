"""Large books on one machine: deals read chunk by chunk give the in-memory path's bits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.engines import chunked, fast
from pipesim.engines import numba as numba_engine
from pipesim.errors import ScenarioError
from pipesim.io import parquet, scenario_folder
from pipesim.prepare.kernel_inputs import prepare, prepare_context, prepare_deals
from pipesim.scenario.keys import deal_keys, stable_hash
from pipesim.scenario.scenario import DEAL_CHUNK
from terminal import run_on_pty

N = 5_000
CHUNK = 1_000  # deals per chunk of the canonical order in these tests
REGIONS = ["North", "South", "East", "West"]


def _stages() -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "stage": ["Lead", "Qualified", "Offer", "Negotiation"],
            "conversion": [0.4, 0.5, 0.6, 0.7],
            "dwell_days": [20.0, 25.0, 15.0, 10.0],
            "dwell_cv": [1.0, 0.7, 0.5, 0.0],
            "value_cv": [0.0, 0.0, 0.1, 0.2],
            "conversion_n": [300.0, 200.0, np.nan, 100.0],
            "region": [None] * 4,
        }
    )
    overrides = pd.DataFrame(
        {
            "stage": ["Offer", "Lead"],
            "conversion": [0.45, np.nan],
            "dwell_days": [np.nan, 40.0],
            "region": ["South", "West"],
        }
    )
    return pd.concat([base, overrides], ignore_index=True)


def _deals(n: int = N, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n).astype(object)
    region[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "deal_id": np.arange(10_000, 10_000 + n, dtype=np.int64),
            "stage": rng.choice(["Lead", "Qualified", "Offer", "Negotiation"], n),
            "amount": rng.lognormal(np.log(5_000.0), 0.5, n).round(2),
            "days_in_stage": rng.exponential(12.0, n).round(),
            "region": region,
            "channel": rng.choice(["web", "partner"], n),
        }
    )


def _arrivals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": ["2027-01", "2027-03", "2027-03", "2027-06"],
            "leads": [40.0, 30.0, 20.0, 50.0],
            "amount": [4_000.0, 5_000.0, 6_000.0, 4_500.0],
            "region": ["North", "South", "Central", None],
        }
    )


def _write(folder, deals: pd.DataFrame, row_group: int = 700):
    """A scenario folder whose deals.parquet has row groups of ``row_group`` rows."""
    settings = pd.DataFrame({"as_of": ["2027-01-01"], "horizon_months": [9], "name": ["big"]})
    parquet.write_tables(
        folder, {"stages": _stages(), "arrivals": _arrivals(), "scenario": settings}
    )
    chunks = (deals.iloc[s : s + row_group] for s in range(0, len(deals), row_group))
    parquet.write_table_chunks(folder / "deals.parquet", chunks)
    return folder


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("book") / "scenario", _deals())


def _on_disk(folder, chunk: int = 600):
    return scenario_folder.load_scenario(folder, deals_in_memory=False, chunk=chunk)


def test_read_deal_rows_reads_rows_across_row_groups(book):
    whole = pd.read_parquet(book / "deals.parquet")
    rows = parquet.read_deal_rows(book, 650, 1_450, ["deal_id", "region"])
    assert list(rows.index) == list(range(650, 1_450))
    pd.testing.assert_frame_equal(rows, whole[["deal_id", "region"]].iloc[650:1_450])
    assert len(parquet.read_deal_rows(book / "deals.parquet", 4_990, 9_999)) == 10
    assert len(parquet.read_deal_rows(book, 7_000, 8_000)) == 0


def test_a_book_on_disk_holds_no_rows_and_reads_the_same_table(book):
    memory = scenario_folder.load_scenario(book)
    disk = _on_disk(book)
    assert memory.deals_in_memory and not disk.deals_in_memory
    assert disk.deal_table is None and disk.deal_count == N
    assert disk.deal_segments == memory.deal_segments == ("region", "channel")
    pd.testing.assert_frame_equal(disk.deals, memory.deals)
    pd.testing.assert_frame_equal(disk.deal_rows(990, 1_010), memory.deal_rows(990, 1_010))
    from pipesim.reports.funnel_table import funnel_table

    a, b = funnel_table(memory), funnel_table(disk)
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-12)


@pytest.mark.parametrize("by", [(), ("region",), ("region", "channel")])
def test_chunk_by_chunk_gives_the_in_memory_bits(book, by):
    memory, disk = scenario_folder.load_scenario(book), _on_disk(book)
    rev0, won0 = numba_engine.run(prepare(memory, by, chunk=CHUNK), 96, seed=7)
    rev1, won1 = chunked.run(disk, prepare_context(disk, by), 96, seed=7, chunk=CHUNK)
    np.testing.assert_array_equal(rev1, rev0)
    np.testing.assert_array_equal(won1, won0)
    assert rev0[:, :, 0].sum() > 0 and rev0.shape[2] == 1 + (len(prepare(memory, by).by_values))


@pytest.mark.parametrize("by", [(), ("region",)])
def test_fast_path_chunk_by_chunk_gives_its_in_memory_bits(book, by):
    # Windows of 250 deals divide the chunks of 1,000, so the cells (and their streams,
    # keyed by their first deal in the book) are the same in both.
    memory, disk = scenario_folder.load_scenario(book), _on_disk(book)
    rev0, won0 = fast.run(prepare(memory, by, chunk=CHUNK), 96, seed=7, window=250)
    context = prepare_context(disk, by)
    rev1, won1 = chunked.run(disk, context, 96, seed=7, chunk=CHUNK, engine="fast", window=250)
    np.testing.assert_array_equal(rev1, rev0)
    np.testing.assert_array_equal(won1, won0)
    # Same law as the per-deal kernel's whole-book mean (Z standard errors of the
    # difference; T = 96 trials each, different draws).
    a, b = (
        rev0[:, :, 0].sum(axis=1),
        numba_engine.run(prepare(memory, by), 96, seed=8)[0][:, :, 0].sum(1),
    )
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) <= 4.5 * se


def test_simulate_fast_engine_reads_a_book_on_disk_by_chunks(book):
    disk = _on_disk(book, chunk=CHUNK)
    result = pipesim.simulate(disk, trials=64, seed=3, engine="fast")
    assert disk.deal_table is None  # never read whole
    assert result.revenue[:, :, 0].sum() > 0


def test_canonical_order_sorts_each_chunk_by_group_and_stage(book):
    memory = scenario_folder.load_scenario(book)
    prepared = prepare(memory, ("region",), chunk=CHUNK)
    context = prepare_context(memory, ("region",))
    gs = prepared.deals.cell
    for start in range(0, N, CHUNK):
        part = gs[start : start + CHUNK]
        assert (np.diff(part) >= 0).all()  # sorted within its chunk
        table = prepare_deals(context, memory.deal_rows(start, start + CHUNK))
        for mine, whole in zip(table, prepared.deals, strict=True):
            np.testing.assert_array_equal(mine, whole[start : start + CHUNK])
    assert (np.diff(gs) < 0).any()  # ... but not across chunks
    # Below DEAL_CHUNK deals the book is one chunk: the order of earlier versions.
    assert (np.diff(prepare(memory).deals.cell) >= 0).all()


def test_simulate_on_disk_equals_in_memory_and_reruns_by_other_columns(book):
    memory, disk = scenario_folder.load_scenario(book), _on_disk(book)
    a = pipesim.simulate(memory, trials=300, seed=11, by="region")
    b = pipesim.simulate(disk, trials=300, seed=11, by="region")
    np.testing.assert_array_equal(a.revenue, b.revenue)
    pd.testing.assert_frame_equal(a.summary("region"), b.summary("region"))
    pd.testing.assert_frame_equal(a.summary("channel"), b.summary("channel"))
    assert b.metadata()["scenario"] == a.metadata()["scenario"]
    assert b.notes == a.notes


def test_replacing_stages_checks_the_deals_on_disk_again(book):
    disk = _on_disk(book)
    stages = disk.stages.copy()
    stages.loc[0, "conversion"] = 0.3
    same_funnel = disk.replace(stages=stages)
    assert same_funnel.deal_source is disk.deal_source  # nothing to check again
    renamed = stages.copy()
    renamed.loc[renamed["stage"] == "Qualified", "stage"] = "Discovery"
    with pytest.raises(ScenarioError, match=r"'stage'.* name a stage not in the funnel"):
        disk.replace(stages=renamed)


def _break(deals: pd.DataFrame, column: str, rows: list[int], value: object) -> pd.DataFrame:
    deals = deals.copy()
    if isinstance(value, str) and deals[column].dtype.kind == "f":
        deals[column] = deals[column].map(repr)  # a text column, as a CSV import may give
    elif isinstance(value, float) and deals[column].dtype.kind in "iu":
        deals[column] = deals[column].astype(float)
    for r in rows:
        deals.at[r, column] = value
    return deals


BAD = [
    ("amount", [3_210, 3_999, 4_100], -5.0, "row 3211 (-5.0), row 4000 (-5.0), row 4101"),
    ("stage", [4_321], "Won", "row 4322 ('Won')"),
    ("days_in_stage", [2_500, 4_999], -1.0, "2 row(s) are negative or missing"),
    ("deal_id", [4_444], None, "row 4445 (nan)"),  # ints with a null read as floats
    ("deal_id", [4_001, 4_900], 10_050, "2 row(s) repeat an earlier deal_id: row 4002 (10050)"),
    ("amount", [1_200 + k for k in range(8)], "n/a", "row 1201 ('n/a')"),
]


@pytest.mark.parametrize(("column", "rows", "value", "needle"), BAD)
def test_bad_rows_in_later_chunks_get_the_in_memory_message(tmp_path, column, rows, value, needle):
    folder = _write(tmp_path / "bad", _break(_deals(), column, rows, value))
    with pytest.raises(ScenarioError) as whole:
        scenario_folder.load_scenario(folder, deals_in_memory=True)
    with pytest.raises(ScenarioError) as chunks:
        _on_disk(folder, chunk=1_000)
    assert str(chunks.value) == str(whole.value)
    assert needle in str(chunks.value) and "deals.parquet" in str(chunks.value)


def test_first_problem_in_check_order_wins_over_earlier_rows(tmp_path):
    deals = _break(_break(_deals(), "amount", [10], -1.0), "deal_id", [4_500], 10_020)
    folder = _write(tmp_path / "bad", deals)
    with pytest.raises(ScenarioError) as whole:
        scenario_folder.load_scenario(folder, deals_in_memory=True)
    with pytest.raises(ScenarioError) as chunks:
        _on_disk(folder, chunk=1_000)
    assert str(chunks.value) == str(whole.value)
    assert "repeat an earlier deal_id: row 4501 (10020)" in str(chunks.value)


def test_a_changed_file_is_not_read_as_the_old_book(book, tmp_path):
    folder = _write(tmp_path / "copy", _deals())
    disk = _on_disk(folder)
    parquet.write_table_chunks(folder / "deals.parquet", [_deals(N - 1)])
    with pytest.raises(ScenarioError, match="changed since the scenario was loaded"):
        pipesim.simulate(disk, trials=10)


def test_deal_keys_are_the_text_keys(book):
    ids = [5, -12, 0, 2**62, 10_000_000_000]
    assert (deal_keys(np.array(ids)) == stable_hash([str(i) for i in ids])).all()
    assert (deal_keys(pd.Series(ids)) == deal_keys(pd.Series([str(i) for i in ids]))).all()
    text = ["d1", "Ünïcode-7", "", "5", "x" * 300]
    assert (deal_keys(pd.Series(text)) == stable_hash(text)).all()
    floats = [1.5, 2.0, 1e20]
    assert (deal_keys(pd.Series(floats)) == stable_hash([str(f) for f in floats])).all()
    mixed = pd.Series([5, "5", 7.0], dtype=object)
    assert (deal_keys(mixed) == stable_hash(["5", "5", "7.0"])).all()
    dates = pd.Series(pd.to_datetime(["2024-01-01 00:00", "2024-05-06 12:00"]))
    assert (deal_keys(dates) == stable_hash(dates.astype(object).map(str).to_numpy())).all()
    whole = pd.read_parquet(book / "deals.parquet")["deal_id"]
    assert (deal_keys(whole) == stable_hash(whole.map(str).to_numpy())).all()


def _big_book(folder, bad_row: int | None = None):
    """A book just over DEAL_CHUNK deals, so that `pipesim run` leaves it on disk."""
    n = DEAL_CHUNK + 3_000
    rng = np.random.default_rng(1)
    regions = pd.CategoricalDtype(REGIONS)

    def chunks():
        for start in range(0, n, 500_000):
            m = min(500_000, n - start)
            amount = rng.lognormal(np.log(5_000.0), 0.5, m)
            if bad_row is not None and start <= bad_row < start + m:
                amount[bad_row - start] = -3.0
            yield pd.DataFrame(
                {
                    "deal_id": np.arange(start, start + m, dtype=np.int64),
                    "stage": pd.Categorical.from_codes(
                        rng.integers(0, 4, m),
                        dtype=pd.CategoricalDtype(["Lead", "Qualified", "Offer", "Negotiation"]),
                    ),
                    "amount": amount,
                    "region": pd.Categorical.from_codes(rng.integers(0, 4, m), dtype=regions),
                }
            )

    settings = pd.DataFrame({"as_of": ["2027-01-01"], "horizon_months": [3]})
    parquet.write_tables(folder, {"stages": _stages(), "scenario": settings})
    parquet.write_table_chunks(folder / "deals.parquet", chunks())
    return folder


def test_cli_runs_a_book_over_one_chunk_from_disk(tmp_path):
    folder = _big_book(tmp_path / "big")
    out = tmp_path / "out"
    run = CliRunner().invoke(
        main, ["run", str(folder), "--trials", "8", "--by", "region", "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    assert f"{DEAL_CHUNK + 3_000:,} open deals" in run.output
    memory = pipesim.simulate(
        scenario_folder.load_scenario(folder, deals_in_memory=True), trials=8, seed=0, by="region"
    )
    written, expected = pd.read_parquet(out / "summary.parquet"), memory.summary("region")
    pd.testing.assert_frame_equal(
        written.drop(columns="region"), expected.drop(columns="region"), check_dtype=False
    )
    assert list(written["region"].fillna("-")) == list(expected["region"].fillna("-"))
    funnel = pd.read_parquet(out / "funnel.parquet")
    assert funnel["deals"].sum() == DEAL_CHUNK + 3_000


def test_cli_bad_row_past_the_first_chunk_exits_2_writing_nothing(tmp_path):
    bad = DEAL_CHUNK + 1_234
    folder = _big_book(tmp_path / "big", bad_row=bad)
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["run", str(folder), "--trials", "5", "--out", str(out)])
    assert run.exit_code == 2, run.output
    assert f"row {bad + 1} (-3.0)" in run.output and "'amount'" in run.output
    assert "Traceback" not in run.output
    assert not out.exists()


def test_progress_counts_every_trial_over_the_chunks(book):
    from pipesim.progress import Progress

    disk = _on_disk(book)
    counter = Progress(130, enabled=False)
    chunked.run(disk, prepare_context(disk), 130, seed=1, progress=counter, chunk=CHUNK)
    assert counter.done == 130


@pytest.mark.slow
def test_ctrl_c_on_a_book_read_from_disk_stops_promptly_and_writes_nothing(tmp_path):
    folder = _big_book(tmp_path / "big")
    out = tmp_path / "out"
    code, text, after_signal = run_on_pty(
        [str(folder), "--trials", "20000"], out, interrupt_after=lambda t: b"trial" in t
    )
    assert code == 130, text
    assert "Interrupted: no results written." in text and "Traceback" not in text
    assert after_signal < 5.0  # a block of trials is ~0.3 s of work on one core
    assert not out.exists() or not any(out.iterdir())


def test_deals_without_the_segment_columns_of_the_stages(tmp_path):
    """Deals that lack the override column all fall in the (None) group, also on disk."""
    deals = _deals().drop(columns=["region"])
    folder = _write(tmp_path / "plain", deals)
    memory, disk = scenario_folder.load_scenario(folder), _on_disk(folder)
    rev0, won0 = numba_engine.run(prepare(memory, ("region",), chunk=CHUNK), 40, seed=2)
    rev1, won1 = chunked.run(disk, prepare_context(disk, ("region",)), 40, seed=2, chunk=CHUNK)
    np.testing.assert_array_equal(rev1, rev0)
    np.testing.assert_array_equal(won1, won0)
    (folder / "deals.parquet").unlink()
    with pytest.raises(ScenarioError, match="cannot be read here"):
        disk.deal_rows(0, 10)
