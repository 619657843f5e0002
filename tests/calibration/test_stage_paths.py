"""Unit tests of pipesim.calibration.stage_paths: each deal's path at a cutoff date.

Tiny histories built with ``pipesim.make_history``; every entry time, outcome and
age below is counted by hand on the calendar (2024 is a leap year: February has
29 days).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipesim
from pipesim.calibration.stage_paths import Paths, paths_at
from pipesim.calibration.survival import ADVANCE, LOST, OPEN

A, L, C = ADVANCE, LOST, OPEN  # C: censored (still open)
CUT = pd.Timestamp("2024-03-01")
DEAL_COLUMNS = ["deal_id", "created_at", "stage", "status", "closed_at", "amount"]


def _deals(rows):
    return pd.DataFrame(rows, columns=DEAL_COLUMNS)


def _events(rows):
    return pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at"])


def _book():
    """Five deals known at 2024-03-01 and one created after it, funnel A, B, C."""
    deals = _deals(
        [
            ("d1", "2024-01-01", "C", "won", "2024-02-01", 100.0),  # A -> B -> C -> won
            ("d2", "2024-01-05", "B", "lost", "2024-02-10", 200.0),  # A -> B, lost in B
            ("d3", "2024-01-10", "C", "open", None, 300.0),  # A -> B -> C, open
            ("d4", "2024-02-20", "A", "open", None, 400.0),  # new, open in A
            ("d5", "2024-01-01", "C", "won", "2024-03-10", 500.0),  # won after the cut
            ("d6", "2024-03-15", "A", "open", None, 600.0),  # created after the cut
        ]
    )
    events = _events(
        [
            ("d1", "A", "2024-01-01"),
            ("d1", "B", "2024-01-11"),
            ("d1", "C", "2024-01-21"),
            ("d2", "A", "2024-01-05"),
            ("d2", "B", "2024-01-15"),
            ("d3", "A", "2024-01-10"),
            ("d3", "B", "2024-01-20"),
            ("d3", "C", "2024-02-09"),
            ("d4", "A", "2024-02-20"),
            ("d5", "A", "2024-01-01"),
            ("d5", "B", "2024-02-01"),
            ("d5", "C", "2024-03-05"),  # after the cut: not happened yet
            ("d6", "A", "2024-03-15"),
        ]
    )
    return deals, events


def _obs_records(paths: Paths) -> list[tuple]:
    """(deal_id, stage, days, outcome, exit_at as text or None), sorted."""
    ids = paths.deals["deal_id"].to_numpy()
    out = []
    for rec in paths.obs.to_dict("records"):
        exit_at = (
            None if pd.isna(rec["exit_at"]) else pd.Timestamp(rec["exit_at"]).date().isoformat()
        )
        days = None if np.isnan(rec["days"]) else float(rec["days"])
        out.append((ids[int(rec["row"])], int(rec["stage"]), days, int(rec["outcome"]), exit_at))
    return sorted(out, key=lambda r: (r[1], r[0]))


def _derived(paths: Paths) -> pd.DataFrame:
    return paths.deals[["deal_id", "created_at", "reached", "state", "days_in_stage"]]


def test_with_events_the_deals_known_at_the_cut_and_their_state_reach_and_age():
    deals, events = _book()
    paths = paths_at(pipesim.make_history(deals, events, stages=["A", "B", "C"]), CUT)
    assert isinstance(paths, Paths)
    assert not paths.cycle
    assert paths.notes == []
    got = _derived(paths)
    assert list(got["deal_id"]) == ["d1", "d2", "d3", "d4", "d5"]  # d6 does not exist yet
    assert list(got["reached"]) == [2, 1, 2, 0, 1]  # won: last stage; d5 only saw A, B
    assert list(got["state"]) == ["won", "lost", "open", "open", "open"]  # d5 won after the cut
    # open deals' age in their stage at the cut:
    # d3 in C since 02-09: 20 + 1 = 21 days; d4 in A since 02-20: 10 days;
    # d5 in B since 02-01: 29 days (its C entry on 03-05 has not happened yet)
    np.testing.assert_array_equal(got["days_in_stage"], [np.nan, np.nan, 21.0, 10.0, 29.0])


def test_with_events_each_stage_observation_is_counted_on_the_calendar():
    deals, events = _book()
    paths = paths_at(pipesim.make_history(deals, events, stages=["A", "B", "C"]), CUT)
    assert _obs_records(paths) == [
        # stage A: left for B (or is still open in A)
        ("d1", 0, 10.0, A, "2024-01-11"),
        ("d2", 0, 10.0, A, "2024-01-15"),
        ("d3", 0, 10.0, A, "2024-01-20"),
        ("d4", 0, 10.0, C, None),  # 02-20 to the cut
        ("d5", 0, 31.0, A, "2024-02-01"),
        # stage B
        ("d1", 1, 10.0, A, "2024-01-21"),
        ("d2", 1, 26.0, L, "2024-02-10"),  # 01-15 to its close on 02-10
        ("d3", 1, 20.0, A, "2024-02-09"),
        ("d5", 1, 29.0, C, None),  # open at the cut
        # stage C: a won deal advances out of the last stage at its close
        ("d1", 2, 11.0, A, "2024-02-01"),
        ("d3", 2, 21.0, C, None),
    ]


def test_events_after_the_cut_entries_on_the_cut_and_closes_on_the_cut_have_not_happened():
    deals = _deals(
        [
            ("e1", "2024-01-01", "A", "lost", "2024-03-01", 1.0),  # closed on the cut: open
            ("e2", "2024-03-01", "A", "open", None, 1.0),  # created on the cut: unknown
            ("e3", "2024-02-01", "B", "open", None, 1.0),
        ]
    )
    events = _events(
        [
            ("e1", "A", "2024-01-01"),
            ("e1", "B", "2024-03-01"),  # entered on the cut: not yet
            ("e2", "A", "2024-03-01"),
            ("e3", "A", "2024-02-01"),
            ("e3", "B", "2024-02-29"),
        ]
    )
    paths = paths_at(pipesim.make_history(deals, events, stages=["A", "B", "C"]), CUT)
    got = _derived(paths)
    assert list(got["deal_id"]) == ["e1", "e3"]
    assert list(got["state"]) == ["open", "open"]
    assert list(got["reached"]) == [0, 1]
    # e1 in A since 01-01: 31 + 29 = 60 days; e3 in B since 02-29: 1 day
    np.testing.assert_array_equal(got["days_in_stage"], [60.0, 1.0])
    assert _obs_records(paths) == [
        ("e1", 0, 60.0, C, None),
        ("e3", 0, 28.0, A, "2024-02-29"),
        ("e3", 1, 1.0, C, None),
    ]


@pytest.mark.parametrize("with_events", [True, False])
def test_changing_anything_dated_after_the_cut_leaves_the_paths_unchanged(with_events):
    deals, events = _book()
    before = paths_at(
        pipesim.make_history(deals, events if with_events else None, stages=["A", "B", "C"]), CUT
    )
    later = deals.copy()
    # d5 closed after the cut: its outcome, close date and stage are the future
    later.loc[later["deal_id"] == "d5", ["status", "closed_at", "stage"]] = [
        "lost",
        "2024-05-20",
        "C",
    ]
    # d6 was created after the cut: anything about it
    later.loc[later["deal_id"] == "d6", ["stage", "status", "closed_at", "amount"]] = [
        "B",
        "lost",
        "2024-04-01",
        9.0,
    ]
    later_events = pd.concat(
        [
            events[~((events["deal_id"] == "d5") & (events["stage"] == "C"))],
            _events(
                [
                    ("d4", "B", "2024-03-01"),  # on the cut: not before it
                    ("d4", "C", "2024-04-02"),
                    ("d3", "B", "2024-06-01"),
                    ("d6", "B", "2024-03-20"),
                ]
            ),
        ],
        ignore_index=True,
    )
    after = paths_at(
        pipesim.make_history(later, later_events if with_events else None, stages=["A", "B", "C"]),
        CUT,
    )
    pd.testing.assert_frame_equal(_derived(after), _derived(before))
    pd.testing.assert_frame_equal(after.obs, before.obs)
    assert after.cycle == before.cycle
    assert after.notes == before.notes


def test_a_skipped_stage_advances_with_unknown_days_and_the_stage_before_runs_to_the_next_entry():
    deals = _deals([("s1", "2024-01-01", "C", "open", None, 1.0)])
    events = _events([("s1", "A", "2024-01-01"), ("s1", "C", "2024-01-31")])
    paths = paths_at(pipesim.make_history(deals, events, stages=["A", "B", "C"]), CUT)
    assert list(paths.deals["reached"]) == [2]
    assert _obs_records(paths) == [
        ("s1", 0, 30.0, A, "2024-01-31"),  # A until it entered C
        ("s1", 1, None, A, "2024-01-31"),  # B skipped: the dates do not tell how long
        ("s1", 2, 30.0, C, None),  # 01-31 to the cut: 29 + 1 days
    ]


def test_an_entry_dated_before_the_previous_stage_is_moved_to_that_date_with_a_note():
    deals = _deals([("s2", "2024-01-10", "B", "lost", "2024-01-30", 1.0)])
    events = _events([("s2", "A", "2024-01-10"), ("s2", "B", "2024-01-04")])
    paths = paths_at(pipesim.make_history(deals, events, stages=["A", "B", "C"]), CUT)
    assert [(reason, rows) for reason, rows, _ in paths.notes] == [
        ("stage order contradicts dates", 1)
    ]
    assert _obs_records(paths) == [
        ("s2", 0, 0.0, A, "2024-01-10"),  # B moved up to A's entry: zero days in A
        ("s2", 1, 20.0, L, "2024-01-30"),
    ]


def test_without_events_durations_run_on_the_creation_clock():
    deals, _ = _book()
    history = pipesim.make_history(deals, stages=["A", "B", "C"])
    paths = paths_at(history, CUT)  # the export (2024-03-15) is after the cut
    assert paths.cycle
    # open deals before the export date: their stage then is unknown, put in A
    assert [(reason, rows) for reason, rows, _ in paths.notes] == [
        ("stage at as_of unknown (no events)", 2)  # d3 (now in C) and d5 (now Won)
    ]
    got = _derived(paths)
    assert list(got["reached"]) == [2, 1, 0, 0, 0]
    assert list(got["state"]) == ["won", "lost", "open", "open", "open"]
    # ages since creation: d3 01-10 -> 51 days, d4 02-20 -> 10, d5 01-01 -> 60
    np.testing.assert_array_equal(got["days_in_stage"], [np.nan, np.nan, 51.0, 10.0, 60.0])
    # every stage passed records the whole creation-to-close time
    assert _obs_records(paths) == [
        ("d1", 0, 31.0, A, "2024-02-01"),
        ("d2", 0, 36.0, A, "2024-02-10"),
        ("d3", 0, 51.0, C, None),
        ("d4", 0, 10.0, C, None),
        ("d5", 0, 60.0, C, None),
        ("d1", 1, 31.0, A, "2024-02-01"),
        ("d2", 1, 36.0, L, "2024-02-10"),
        ("d1", 2, 31.0, A, "2024-02-01"),
    ]


def test_without_events_after_the_export_date_open_deals_are_in_their_current_stage():
    deals, _ = _book()
    history = pipesim.make_history(deals, stages=["A", "B", "C"])
    assert history.last_date == pd.Timestamp("2024-03-15")
    paths = paths_at(history, pd.Timestamp("2024-04-01"))
    assert paths.notes == []
    got = _derived(paths)
    assert list(got["deal_id"]) == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert list(got["reached"]) == [2, 1, 2, 0, 2, 0]
    assert list(got["state"]) == ["won", "lost", "open", "open", "won", "open"]
    # the age since creation is split evenly over the stages passed:
    # d3 01-10 -> 04-01 is 82 days over 3 stages; d4 02-20 -> 41 days; d6 03-15 -> 17
    np.testing.assert_allclose(
        got["days_in_stage"], [np.nan, np.nan, 82.0 / 3, 41.0, np.nan, 17.0], equal_nan=True
    )


def test_one_stage_without_events_is_not_the_creation_clock_case():
    deals = _deals(
        [
            ("a", "2024-01-01", "Lead", "won", "2024-01-21", 1.0),
            ("b", "2024-01-11", "Lead", "lost", "2024-01-16", 1.0),
            ("c", "2024-02-01", "Lead", "open", None, 1.0),
        ]
    )
    paths = paths_at(pipesim.make_history(deals, stages=["Lead"]), pd.Timestamp("2024-02-11"))
    assert not paths.cycle
    assert paths.notes == []
    np.testing.assert_array_equal(paths.deals["days_in_stage"], [np.nan, np.nan, 10.0])
    assert _obs_records(paths) == [
        ("a", 0, 20.0, A, "2024-01-21"),
        ("b", 0, 5.0, L, "2024-01-16"),
        ("c", 0, 10.0, C, None),
    ]


@pytest.mark.parametrize("with_events", [True, False])
def test_a_cut_before_every_deal_gives_empty_paths(with_events):
    deals, events = _book()
    history = pipesim.make_history(deals, events if with_events else None, stages=["A", "B", "C"])
    paths = paths_at(history, pd.Timestamp("2023-06-01"))
    assert len(paths.deals) == 0
    assert len(paths.obs) == 0
    assert list(paths.obs.columns) == ["row", "stage", "days", "outcome", "exit_at"]
    assert {"reached", "state", "days_in_stage"} <= set(paths.deals.columns)
