"""The page's lever inputs: one field per lever, read into :class:`~pipesim.plan.levers.Lever`s.

A field left empty or at its neutral value (x1 for a scale, +0 for an add) is no lever. Each
lever is checked as the command line checks it (:func:`pipesim.api.apply_lever`), and its
message is shown next to the field it came from; nothing the planner typed raises.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pandas as pd

from pipesim import api
from pipesim.errors import InputError
from pipesim.scenario.scenario import Scenario

MAX_SEGMENT_VALUES = 200  # per column in the segment list; more make the list unusable
DEFAULT_VARIANT = "variant"


@dataclasses.dataclass(frozen=True)
class Field:
    """One lever input: its form name, the lever it makes, and how to label it."""

    name: str
    quantity: str
    how: str
    stage: str | None
    label: str

    @property
    def neutral(self) -> float:
        """The value that changes nothing (x1, +0)."""
        return 1.0 if self.how == "scale" else 0.0


@dataclasses.dataclass(frozen=True)
class Reading:
    """What a form said: the levers, the variant's name, and a message per bad field."""

    name: str
    levers: tuple[api.Lever, ...]
    errors: dict[str, str]
    values: dict[str, str]
    segment: int


def fields(scenario: Scenario) -> list[Field]:
    """The lever inputs of a scenario: leads and amount, then conversion and cycle time per stage.

    Stages are numbered in the form names (``conversion.0``): a stage name may hold any text.
    """
    out = []
    if len(scenario.arrivals):
        out.append(Field("leads", "leads", "scale", None, "new leads ×"))
    out.append(Field("amount", "amount", "scale", None, "deal amount ×"))
    for i, stage in enumerate(scenario.funnel):
        out.append(Field(f"conversion.{i}", "conversion", "add", stage, "conversion +"))
        out.append(Field(f"dwell.{i}", "dwell", "scale", stage, "cycle time ×"))
    return out


def segment_options(scenario: Scenario) -> list[tuple[str, str]]:
    """The ``(column, value)`` pairs a variant may be limited to, deals' columns first."""
    frames = [scenario.arrivals]
    if scenario.deals_in_memory:
        frames.insert(0, scenario.deals)
    columns = list(dict.fromkeys([*scenario.deal_segments, *scenario.arrival_segments]))
    options = []
    for col in columns:
        values: list[str] = []
        for frame in frames:
            if col in frame.columns:
                values += [str(v) for v in frame[col].dropna().unique()]
        options += [(col, v) for v in sorted(set(values))[:MAX_SEGMENT_VALUES]]
    return options


def read_form(scenario: Scenario, params: Mapping[str, str]) -> Reading:
    """The levers a submitted form asks for, each checked on the scenario.

    ``params`` holds the raw texts: ``variant`` (the name), ``segment`` (an index into
    :func:`segment_options`, 0 for the whole book, 1 for the first option) and one entry
    per :func:`fields` name.
    """
    errors: dict[str, str] = {}
    values = {f.name: str(params.get(f.name, "")).strip() for f in fields(scenario)}
    name = str(params.get("variant", DEFAULT_VARIANT)).strip()
    options = segment_options(scenario)
    segment_text = str(params.get("segment", "0")).strip() or "0"
    segment: tuple[tuple[str, str], ...] = ()
    index = 0
    if segment_text.isdigit() and int(segment_text) <= len(options):
        index = int(segment_text)
        segment = (options[index - 1],) if index else ()
    else:
        errors["segment"] = "pick a segment from the list."
    levers = []
    for field in fields(scenario):
        text = values[field.name]
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            errors[field.name] = f"{text!r} is not a number; write e.g. {field.neutral + 0.1:g}."
            continue
        if value == field.neutral:
            continue
        lever = api.Lever(field.quantity, field.how, value, field.stage, segment)
        lever = dataclasses.replace(lever, text=lever.label())
        try:
            api.apply_lever(scenario, lever)
        except InputError as exc:
            errors[field.name] = str(exc)
            continue
        levers.append(lever)
    if levers:
        try:
            api.variant_rows(name, levers)
        except InputError as exc:
            errors["variant"] = str(exc)
    return Reading(name, tuple(levers), errors, values, index)


def lever_rows(reading: Reading) -> pd.DataFrame:
    """The form's variant as ``levers.parquet`` rows."""
    return api.variant_rows(reading.name, reading.levers)
