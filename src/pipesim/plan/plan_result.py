"""The result of a planning command: its table(s), metadata, messages and printed text."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from pipesim.scenario.scenario import Scenario


@dataclasses.dataclass
class PlanResult:
    """What :func:`pipesim.target`, ``compare``, ``sensitivity`` and ``health`` return.

    Attributes
    ----------
    kind : str
        The command (``target``, ``compare``, ``sensitivity``, ``health``, ``explain``).
    tables : dict of DataFrame
        ``{file name without .parquet: table}``; the first is the main one.
    metadata : dict of str
        Settings and scalar results written into every file's Parquet metadata.
    messages : list of str
        Findings to show the user (e.g. that a target cannot be reached).
    text : str
        The report printed in the terminal.
    """

    kind: str
    scenario: Scenario
    tables: dict[str, pd.DataFrame]
    metadata: dict[str, str]
    messages: list[str] = dataclasses.field(default_factory=list)
    text: str = ""

    @property
    def table(self) -> pd.DataFrame:
        """The main table (e.g. target.parquet's rows; explain's movement.parquet)."""
        return self.tables.get(self.kind, next(iter(self.tables.values())))

    def write(self, out: str | os.PathLike[str]) -> list[Path]:
        """Write every table as ``out/<name>.parquet`` (atomically, with the metadata)."""
        from pipesim.io import parquet

        return parquet.write_tables(out, self.tables, self.metadata)


def base_metadata(kind: str, scenario: Scenario, trials: int, seed: int) -> dict[str, str]:
    """The settings every planning file carries (``scenario_fingerprint``: see io.fingerprint)."""
    from pipesim.io.fingerprint import scenario_fingerprint
    from pipesim.version import __version__

    return {
        "pipesim_version": __version__,
        "command": kind,
        "seed": str(seed),
        "trials": str(trials),
        "scenario": str(Path(scenario.path).resolve()) if scenario.path else scenario.name,
        "scenario_name": scenario.name,
        "as_of": scenario.as_of.isoformat(),
        "horizon_months": str(scenario.horizon_months),
        "currency": scenario.currency,
        "scenario_fingerprint": scenario_fingerprint(scenario),
    }


ScenarioLike = Scenario | str | os.PathLike[str] | None


def as_scenario(scenario: ScenarioLike) -> Scenario:
    """A Scenario as given, or loaded from a folder (the bundled demo when None)."""
    if isinstance(scenario, Scenario):
        return scenario
    from pipesim.io import scenario_folder
    from pipesim.scenario.demo import demo_path

    return scenario_folder.load_scenario(Path(scenario) if scenario is not None else demo_path())


def check_run(trials: int, months: int | None, scenario: Scenario) -> int:
    """Validate ``trials`` and ``months`` (default: the horizon); return the months."""
    from pipesim.errors import InputError

    if isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0:
        raise InputError(
            f"trials={trials!r}: must be a positive whole number.", parameters=("trials",)
        )
    if months is None:
        return scenario.horizon_months
    if not 1 <= int(months) <= scenario.horizon_months:
        raise InputError(
            f"months={months}: must be between 1 and the scenario's horizon "
            f"({scenario.horizon_months} months); lengthen horizon_months in scenario.parquet "
            "to look further.",
            parameters=("months",),
        )
    return int(months)
