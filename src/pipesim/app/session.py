"""One planner's page: the scenario, the run on screen, its variant and target, the files.

Everything is computed through :mod:`pipesim.api` with the page's trials and seed, so each
figure is the one the matching command prints (``pipesim compare``, ``target``, ``health``).
What is on screen is also kept as a results folder in a temporary directory (the run's
files, ``compare``/``target``/``health`` when shown, the variant's ``levers``): the
downloads are made from it.
"""

from __future__ import annotations

import dataclasses
import io
import math
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipesim import api
from pipesim.app import lever_form
from pipesim.errors import InputError
from pipesim.plan.plan_result import PlanResult
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.result import Result

PAGE_TRIALS = 2_000  # the page's default: a variant's figures within about a second (demo)
MAX_TRIALS = 1_000_000


@dataclasses.dataclass(frozen=True)
class Goal:
    """A revenue target over the first ``months`` (None: the horizon), at a confidence."""

    revenue: float
    confidence: float
    months: int | None


@dataclasses.dataclass(frozen=True)
class Settings:
    """The page's Monte Carlo settings and breakdown."""

    trials: int
    seed: int
    by: str | None


def read_settings(
    params: Mapping[str, str], now: Settings, segments: tuple[str, ...]
) -> tuple[Settings, dict[str, str]]:
    """The settings a form asks for (missing ones unchanged) and a message per bad field."""
    errors: dict[str, str] = {}
    trials, seed, by = now.trials, now.seed, now.by
    text = str(params.get("trials", "")).strip().replace(",", "")
    if text:
        if text.isdigit() and 0 < int(text) <= MAX_TRIALS:
            trials = int(text)
        else:
            errors["trials"] = f"{text!r}: give a whole number from 1 to {MAX_TRIALS:,}."
    text = str(params.get("seed", "")).strip()
    if text:
        if text.isdigit() and int(text) < 2**63:
            seed = int(text)
        else:
            errors["seed"] = f"{text!r}: give a whole number from 0 to 2^63 - 1."
    if "by" in params:
        text = str(params["by"]).strip()
        if text and text not in segments:
            errors["by"] = f"{text!r}: pick a segment column from the list."
        else:
            by = text or None
    return Settings(trials, seed, by), errors


def read_goal(params: Mapping[str, str], horizon: int) -> tuple[Goal | None, dict[str, str]]:
    """The target a form asks for, or the message of each bad field."""
    errors: dict[str, str] = {}
    revenue = _number(params.get("revenue", ""))
    if not (math.isfinite(revenue) and revenue > 0):
        errors["revenue"] = "give the revenue target, a positive amount (e.g. 12000000)."
    confidence = _number(params.get("confidence", "") or "0.8")
    if not 0 < confidence < 1:
        errors["confidence"] = "give the probability wanted, between 0 and 1 (e.g. 0.8)."
    months_text = str(params.get("months", "")).strip()
    months = None
    if months_text:
        if months_text.isdigit() and 1 <= int(months_text) <= horizon:
            months = int(months_text)
        else:
            errors["months"] = f"give a whole number of months from 1 to {horizon}, or nothing."
    if errors:
        return None, errors
    return Goal(revenue, confidence, months), errors


def _number(text: object) -> float:
    try:
        return float(str(text).strip().replace(",", ""))
    except ValueError:
        return math.nan


class PlanningSession:
    """The state of the page, one computation at a time (a lock: requests come in parallel).

    Parameters
    ----------
    scenario : Scenario
        The checked scenario (:func:`pipesim.api.load_scenario`).
    trials, seed : int
        The Monte Carlo settings every figure of the page uses.
    by : str, optional
        The segment column the forecast is broken down by (default: the deals' first).
    """

    def __init__(
        self, scenario: Scenario, trials: int = PAGE_TRIALS, seed: int = 0, by: str | None = None
    ) -> None:
        self.scenario = scenario
        self.lock = threading.Lock()
        self.folder = Path(tempfile.mkdtemp(prefix="pipesim-app-"))
        segments = self.segment_columns
        default_by = segments[0] if segments else None
        self.settings = Settings(trials, seed, by if by is not None else default_by)
        self.fields = lever_form.fields(scenario)
        self.options = lever_form.segment_options(scenario)
        self.reading = lever_form.read_form(scenario, {})
        self.levers: pd.DataFrame | None = None
        self.result: Result | None = None
        self.compared: PlanResult | None = None
        self.compare_seconds = 0.0
        self.goal: Goal | None = None
        self.target: PlanResult | None = None
        self.health: PlanResult | None = None
        self.goal_errors: dict[str, str] = {}
        self.run_seconds = 0.0
        self.run_number = 0  # counts the runs: the page draws each run's forecast once
        self.memo: dict[tuple[object, ...], Any] = {}  # compare's base runs, kept (same bits)
        self.drawn: tuple[int, str] = (0, "")
        try:
            with self.lock:
                self._run()
        except BaseException:
            self.close()
            raise

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """The columns the forecast may be broken down by."""
        sc = self.scenario
        return tuple(dict.fromkeys([*sc.deal_segments, *sc.arrival_segments]))

    # --- what the forms ask -----------------------------------------------------------

    def configure(self, params: Mapping[str, str]) -> dict[str, str]:
        """Apply the settings form (run again when trials, seed or the breakdown change)."""
        settings, errors = read_settings(params, self.settings, self.segment_columns)
        with self.lock:
            if settings != self.settings:
                self.settings = settings
                self._run()
        return errors

    def vary(self, params: Mapping[str, str]) -> dict[str, str]:
        """Apply the levers form: the variant against the base, unless a field is wrong.

        Returns the message of each bad field (the variant on screen is then left as it was).
        """
        reading = lever_form.read_form(self.scenario, params)
        if reading.errors:
            with self.lock:
                self.reading = dataclasses.replace(
                    self.reading, errors=reading.errors, values=reading.values
                )
            return reading.errors
        with self.lock:
            before, self.reading = self.reading, reading
            try:
                self._compare()
            except InputError as exc:  # the levers together (each alone was fine)
                errors = {"variant": str(exc)}
                self.reading = dataclasses.replace(before, errors=errors, values=reading.values)
                return errors
        return {}

    def aim(self, params: Mapping[str, str]) -> dict[str, str]:
        """Apply the target form: leads needed and stage health, or the bad fields' messages."""
        goal, errors = read_goal(params, self.scenario.horizon_months)
        with self.lock:
            self.goal_errors = errors
            if goal is not None:
                self.goal = goal
                try:
                    self._aim()
                except InputError as exc:
                    self.goal, self.target, self.health = None, None, None
                    self._drop("target", "health")
                    self.goal_errors = {"revenue": str(exc)}
        return self.goal_errors

    # --- the computations, under the lock --------------------------------------------

    def _run(self) -> None:
        start = time.perf_counter()
        s = self.settings
        self.result = api.simulate(self.scenario, trials=s.trials, seed=s.seed, by=s.by)
        for old in self.folder.glob("*.parquet"):
            old.unlink()
        api.write_results(self.result, self.folder)
        self.run_seconds = time.perf_counter() - start
        self.run_number += 1
        self._compare()
        if self.goal is not None:
            self._aim()

    def _compare(self) -> None:
        reading = self.reading
        if not reading.levers:
            self.compared, self.levers = None, None
            self._drop("compare", "levers")
            return
        start = time.perf_counter()
        rows = lever_form.lever_rows(reading)
        s = self.settings
        self.compared = api.compare(
            self.scenario, trials=s.trials, seed=s.seed, levers_frame=rows, memo=self.memo
        )
        self.compare_seconds = time.perf_counter() - start
        self.levers = rows
        self.compared.write(self.folder)
        api.write_levers(rows, self.folder)

    def _aim(self) -> None:
        goal, s = self.goal, self.settings
        assert goal is not None
        common = {"months": goal.months, "confidence": goal.confidence}
        common |= {"trials": s.trials, "seed": s.seed}
        self.target = api.target(self.scenario, goal.revenue, **common)  # type: ignore[arg-type]
        self.health = api.health(self.scenario, goal.revenue, **common)  # type: ignore[arg-type]
        self.target.write(self.folder)
        self.health.write(self.folder)

    def _drop(self, *names: str) -> None:
        for name in names:
            (self.folder / f"{name}.parquet").unlink(missing_ok=True)

    # --- downloads ---------------------------------------------------------------------

    def results_zip(self) -> bytes:
        """The Parquet files of what is on screen, as one zip."""
        buf = io.BytesIO()
        with self.lock, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(self.folder.glob("*.parquet")):
                zf.write(path, path.name)
        return buf.getvalue()

    def workbook(self) -> bytes:
        """The Excel workbook of what is on screen (the report's sheets)."""
        with self.lock, tempfile.TemporaryDirectory(prefix="pipesim-xlsx-") as tmp:
            return api.workbook(self.folder, Path(tmp) / "pipesim.xlsx").read_bytes()

    def levers_file(self) -> bytes | None:
        """The variant on screen as ``levers.parquet`` (None when no lever is set)."""
        with self.lock:
            path = self.folder / "levers.parquet"
            return path.read_bytes() if self.levers is not None and path.is_file() else None

    def close(self) -> None:
        """Remove the temporary results folder."""
        shutil.rmtree(self.folder, ignore_errors=True)
