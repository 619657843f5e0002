"""Unit tests of pipesim.scenario.deal_checks: the deals table checked chunk after chunk.

Rows are numbered in the whole book and shown 1-based, as a spreadsheet numbers
its data rows; a book given in chunks must get exactly the message (and the
normalised rows) it gets in one piece.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipesim.errors import ScenarioError
from pipesim.scenario.deal_checks import SHOWN, DealChecker, check_deals, normalise_deals
from pipesim.scenario.scenario import DEAL_COLUMNS

FUNNEL = ["A", "B", "C"]
SOURCE = "/x/deals.parquet"


def _book(n: int = 12) -> pd.DataFrame:
    """A clean book of ``n`` deals d0, d1, ... cycling through the stages."""
    return pd.DataFrame(
        {
            "deal_id": [f"d{i}" for i in range(n)],
            "stage": [FUNNEL[i % 3] for i in range(n)],
            "amount": [100.0 * (i + 1) for i in range(n)],
            "days_in_stage": [float(i) for i in range(n)],
            "region": [["EU", "US", None][i % 3] for i in range(n)],
        }
    )


def _chunked(table: pd.DataFrame, size: int) -> tuple[DealChecker, list[pd.DataFrame | None]]:
    """Check ``table`` in chunks of ``size`` rows (index: the rows' numbers in the book)."""
    checker = DealChecker(SOURCE, list(table.columns), DEAL_COLUMNS, FUNNEL)
    outs = [checker.check(table.iloc[i : i + size]) for i in range(0, len(table), size)]
    return checker, outs


def _finish(checker: DealChecker, table: pd.DataFrame) -> None:
    checker.finish(lambda rows: table["deal_id"].to_numpy()[rows])


def _message(table: pd.DataFrame, size: int | None = None) -> str:
    """The ScenarioError message for ``table`` in one piece, or in chunks of ``size``."""
    with pytest.raises(ScenarioError) as info:
        if size is None:
            check_deals(table, SOURCE, DEAL_COLUMNS, FUNNEL)
        else:
            checker, _ = _chunked(table, size)
            _finish(checker, table)
    return str(info.value)


def test_shown_rows_are_five():
    assert SHOWN == 5


def test_duplicate_id_across_two_chunks_names_the_later_row_in_the_whole_book():
    table = _book(6)
    table.loc[4, "deal_id"] = "d1"  # row 5 (1-based) repeats row 2
    checker, outs = _chunked(table, 3)
    assert all(out is not None for out in outs)  # repeats are found only at the end
    with pytest.raises(ScenarioError) as info:
        _finish(checker, table)
    assert str(info.value) == (
        f"{SOURCE}, column 'deal_id': 1 row(s) repeat an earlier deal_id: row 5 ('d1'). "
        "Each open deal appears once; remove or rename the duplicates."
    )
    assert _message(table) == str(info.value)


def test_duplicate_ids_in_three_chunks_are_counted_with_their_first_rows():
    table = _book(12)
    table["deal_id"] = ["a", "b", "c", "a", "d", "b", "e", "a", "f", "g", "c", "h"]
    # repeats at 0-based 3, 5, 7, 10 -> rows 4, 6, 8, 11
    expected = (
        f"{SOURCE}, column 'deal_id': 4 row(s) repeat an earlier deal_id: "
        "row 4 ('a'), row 6 ('b'), row 8 ('a'), row 11 ('c'). "
        "Each open deal appears once; remove or rename the duplicates."
    )
    assert _message(table, 4) == expected
    assert _message(table, 5) == expected
    assert _message(table) == expected


def test_the_integer_id_5_and_the_text_5_are_the_same_deal():
    table = pd.DataFrame(
        {"deal_id": pd.Series([5, 7, "5"], dtype=object), "stage": "A", "amount": 1.0}
    )
    assert "1 row(s) repeat an earlier deal_id: row 3 ('5')" in _message(table)


def test_integer_ids_in_one_chunk_repeat_text_ids_of_another():
    first = pd.DataFrame({"deal_id": [1, 2, 3], "stage": "A", "amount": 1.0})
    second = pd.DataFrame(
        {"deal_id": ["4", "2"], "stage": "B", "amount": 1.0}, index=pd.RangeIndex(3, 5)
    )
    assert first["deal_id"].dtype == np.int64
    checker = DealChecker(SOURCE, list(first.columns), DEAL_COLUMNS, FUNNEL)
    assert checker.check(first) is not None
    assert checker.check(second) is not None
    ids = np.array([1, 2, 3, "4", "2"], dtype=object)
    with pytest.raises(ScenarioError, match=r"1 row\(s\) repeat an earlier deal_id: row 5 \('2'\)"):
        checker.finish(lambda rows: ids[rows])


def test_missing_id_is_reported_and_repeats_are_not_looked_for():
    table = _book(6)
    table["deal_id"] = ["a", None, "a", "b", None, "c"]
    na = repr(table["deal_id"].to_numpy()[1])  # None, or nan in a pandas 3 str column
    assert _message(table, 4) == (
        f"{SOURCE}, column 'deal_id': 2 row(s) have no deal_id: row 2 ({na}), row 5 ({na}). "
        "Give every deal an id."
    )


def test_unknown_and_missing_stage_name_the_funnel_and_the_fix():
    table = _book(6)
    table["stage"] = ["A", "Won", "B", "C", None, "a"]
    na = repr(table["stage"].to_numpy()[4])  # None, or nan in a pandas 3 str column
    message = _message(table, 2)
    assert message == (
        f"{SOURCE}, column 'stage': 3 row(s) name a stage not in the funnel ['A', 'B', 'C']: "
        f"row 2 ('Won'), row 5 ({na}), row 6 ('a'). "
        "Use a stage of stages.parquet (won and lost deals are not open: leave them out)."
    )
    assert _message(table) == message


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        (
            [1.0, -2.0, 3.0, np.nan, 5.0, 6.0],
            "2 row(s) are negative or missing: row 2 (-2.0), row 4 (nan). "
            "Write each deal's expected value (0 or more).",
        ),
        (
            [1.0, 2.0, np.inf, 4.0, 1e300, 6.0],
            "2 row(s) are infinite or above 1,000,000,000,000,000: row 3 (inf), row 5 (1e+300). "
            "Write each deal's value in the scenario's currency (extra zeros?).",
        ),
        (
            [1.0, 2.0, 3.0, "abc", 5.0, "-"],
            "2 row(s) are not numbers: row 4 ('abc'), row 6 ('-'). Write plain numbers there.",
        ),
    ],
)
def test_bad_amount_names_rows_and_fix(amounts, expected):
    table = _book(6)
    table["amount"] = pd.Series(amounts, dtype=object if "abc" in amounts else float)
    message = _message(table, 4)
    assert message.startswith(f"{SOURCE}, column 'amount': {expected}")
    assert _message(table) == message


def test_zero_amount_and_zero_days_are_fine():
    table = _book(3).assign(amount=0.0, days_in_stage=0.0)
    out = check_deals(table, SOURCE, DEAL_COLUMNS, FUNNEL)
    np.testing.assert_array_equal(out["amount"], [0.0, 0.0, 0.0])


def test_negative_or_missing_days_in_stage_names_rows_and_fix():
    table = _book(6)
    table["days_in_stage"] = [0.0, -1.0, 2.0, 3.0, np.nan, -0.5]
    message = _message(table, 3)
    assert message == (
        f"{SOURCE}, column 'days_in_stage': 3 row(s) are negative or missing: "
        "row 2 (-1.0), row 5 (nan), row 6 (-0.5). "
        "Write how many days the deal has been in its stage (0 for a new one)."
    )
    assert _message(table) == message


def test_days_in_stage_not_a_number():
    table = _book(3)
    table["days_in_stage"] = pd.Series([0.0, "two", 2.0], dtype=object)
    assert _message(table) == (
        f"{SOURCE}, column 'days_in_stage': 1 row(s) are not numbers: row 2 ('two'). "
        "Write plain numbers there."
    )


def test_a_many_row_problem_quotes_five_rows_and_counts_the_rest():
    table = _book(12)
    bad = [0, 2, 3, 5, 6, 7, 9, 11]  # 8 negative amounts over three chunks of 4
    table.loc[bad, "amount"] = -1.0
    expected = (
        f"{SOURCE}, column 'amount': 8 row(s) are negative or missing: "
        "row 1 (-1.0), row 3 (-1.0), row 4 (-1.0), row 6 (-1.0), row 7 (-1.0) and 3 more. "
        "Write each deal's expected value (0 or more)."
    )
    assert _message(table, 4) == expected
    assert _message(table, 1) == expected
    assert _message(table) == expected


def test_the_first_kind_in_the_check_order_is_reported_whichever_chunk_it_is_in():
    table = _book(8)
    table.loc[0, "amount"] = -1.0  # first chunk: a bad amount
    table.loc[1, "days_in_stage"] = -1.0
    table.loc[6, "stage"] = "Z"  # last chunk: an unknown stage, earlier in the order
    message = _message(table, 4)
    assert message.startswith(f"{SOURCE}, column 'stage': 1 row(s)")
    assert "row 7 ('Z')" in message
    # a repeated id comes before the stage
    table.loc[7, "deal_id"] = "d0"
    assert _message(table, 4).startswith(f"{SOURCE}, column 'deal_id': 1 row(s) repeat")


def test_a_missing_required_column_is_named_at_once():
    with pytest.raises(ScenarioError) as info:
        DealChecker(SOURCE, ["deal_id", "stage"], DEAL_COLUMNS, FUNNEL)
    assert str(info.value).startswith(f"{SOURCE}: required column(s) 'amount' missing")


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Segment text as objects, missing as None: a chunk whose segment values are all
    missing comes out as object/None, the others (pandas 3) as str/NaN."""
    region = frame["region"].astype(object)
    return frame.assign(region=region.where(region.notna(), None))


def test_a_clean_book_in_chunks_gives_the_same_rows_and_totals_as_in_one_piece():
    table = _book(12)
    whole = check_deals(table, SOURCE, DEAL_COLUMNS, FUNNEL)
    for size in (1, 5, 12):
        checker, outs = _chunked(table, size)
        _finish(checker, table)  # no error
        assert all(out is not None for out in outs)
        pd.testing.assert_frame_equal(_plain(pd.concat(outs)), _plain(whole))
        # A holds deals 0, 3, 6, 9: amounts 100 + 400 + 700 + 1000
        assert checker.stage_deals == {"A": 4, "B": 4, "C": 4}
        assert checker.stage_value == {"A": 2200.0, "B": 2600.0, "C": 3000.0}
        assert checker.segments == ["region"]


def test_check_without_normalise_returns_nothing_but_counts_stages():
    table = _book(6)
    checker = DealChecker(SOURCE, list(table.columns), DEAL_COLUMNS, FUNNEL)
    assert checker.check(table, normalise=False) is None
    _finish(checker, table)
    assert checker.stage_deals == {"A": 2, "B": 2, "C": 2}


def test_a_chunk_with_a_problem_returns_none():
    table = _book(6)
    table.loc[4, "amount"] = -3.0
    _, outs = _chunked(table, 3)
    assert outs[0] is not None
    assert outs[1] is None


def test_check_deals_normalises_ids_stages_numbers_and_segments():
    table = pd.DataFrame(
        {
            "deal_id": [1, 2, 3],
            "stage": ["A", "B", "C"],
            "amount": ["10", 20, 30.5],
            "region": [2024.0, None, "EU"],
        },
        index=[7, 8, 9],
    )
    out = check_deals(table, SOURCE, DEAL_COLUMNS, FUNNEL)
    assert list(out.columns) == ["deal_id", "stage", "amount", "days_in_stage", "region"]
    assert list(out.index) == [0, 1, 2]  # one chunk, rows of the book
    assert list(out["deal_id"]) == [1, 2, 3]
    np.testing.assert_array_equal(out["amount"], [10.0, 20.0, 30.5])
    np.testing.assert_array_equal(out["days_in_stage"], [0.0, 0.0, 0.0])  # column absent: 0
    assert out["region"].iloc[0] == "2024"  # a year read as a float is its text
    assert pd.isna(out["region"].iloc[1])
    assert out["region"].iloc[2] == "EU"


def test_normalise_deals_gives_the_checked_rows_for_a_clean_book():
    table = _book(6)
    table["region"] = [2024.0, None, "EU", "US", None, 7.0]
    checked = check_deals(table, SOURCE, DEAL_COLUMNS, FUNNEL)
    pd.testing.assert_frame_equal(normalise_deals(table), checked)
    # any subset of the columns, index kept
    part = normalise_deals(table.iloc[2:5][["stage", "amount"]])
    assert list(part.index) == [2, 3, 4]
    pd.testing.assert_frame_equal(part, checked.iloc[2:5][["stage", "amount"]])


def test_normalise_deals_reads_numbers_written_as_text():
    table = pd.DataFrame({"amount": ["1.5", "2"], "days_in_stage": ["3", "0"]})
    out = normalise_deals(table)
    assert out["amount"].dtype == np.float64
    np.testing.assert_array_equal(out["amount"], [1.5, 2.0])
    np.testing.assert_array_equal(out["days_in_stage"], [3.0, 0.0])


def test_normalise_deals_converts_only_the_columns_given():
    out = normalise_deals(_book(3).drop(columns="days_in_stage"))
    assert "days_in_stage" not in out.columns
