"""Levers: named changes to a base scenario (more leads, better conversion, price, cycle time).

A lever changes one quantity (``leads``, ``conversion``, ``amount``, ``dwell``, ``loss``) by
``scale``, ``add`` or ``set``, for one stage or all, and for the rows of one segment
or all. Levers are written on the command line as
``QUANTITY[:STAGE](+|-|*|=)VALUE[@COLUMN=VALUE[,COLUMN=VALUE]]`` (``-`` adds a
negative value) or held in a scenario folder's ``levers.parquet`` (columns
``variant``, ``quantity``, ``how``, ``value``, optional ``stage`` and any segment
columns: a non-null value there restricts the lever to that segment). Levers that
share a ``variant`` name are applied together, in row order.

Applying a lever returns a new, validated :class:`~pipesim.scenario.scenario.Scenario`:

- ``leads`` changes ``arrivals.leads`` of the matching arrival rows (no stage);
- ``amount`` changes the amounts of the matching open deals (of that stage, if one
  is given) and, without a stage, of the matching arrival rows;
- ``conversion``, ``dwell`` and ``loss`` change ``conversion`` / ``dwell_days`` /
  ``loss_days`` in the stages table; for a segment, override rows are added (or
  edited) so that only that segment's deals and leads see the change. ``dwell``
  moves the advance clock; ``loss`` the loss clock, which a stage must have to be
  scaled or shifted (``loss:Offer=90`` sets one). A stage without a loss clock of
  its own loses deals on its advance clock, so ``dwell`` moves both there.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.scenario.scenario import STAGE_COLUMNS, Scenario

QUANTITIES = ("leads", "conversion", "amount", "dwell", "loss")
HOWS = {"*": "scale", "+": "add", "-": "add", "=": "set"}
_STAGE_PARAM = {"conversion": "conversion", "dwell": "dwell_days", "loss": "loss_days"}
_LEVER_RE = re.compile(
    r"^\s*(?P<q>[A-Za-z_]+)\s*(?::\s*(?P<stage>[^*+=@-][^*+=@]*?))?\s*"
    r"(?P<op>[*+=-])\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
    r"(?:@(?P<seg>.+))?$"
)
LEVER_COLUMNS = ("variant", "quantity", "how", "value", "stage")


@dataclasses.dataclass(frozen=True)
class Lever:
    """One change to a scenario.

    Attributes
    ----------
    quantity : {"leads", "conversion", "amount", "dwell", "loss"}
    how : {"scale", "add", "set"}
    value : float
    stage : str or None
        One stage of the funnel, or None for all.
    segment : tuple of (column, value)
        Only rows with these segment values change (all rows when empty).
    text : str
        How the lever was written, for messages.
    """

    quantity: str
    how: str
    value: float
    stage: str | None = None
    segment: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def label(self) -> str:
        """The lever in the command-line syntax."""
        if self.text:
            return self.text
        op = {"scale": "*", "set": "=", "add": "+" if self.value >= 0 else "-"}[self.how]
        value = abs(self.value) if self.how == "add" else self.value
        stage = f":{self.stage}" if self.stage else ""
        seg = "@" + ",".join(f"{c}={v}" for c, v in self.segment) if self.segment else ""
        return f"{self.quantity}{stage}{op}{value:g}{seg}"

    def change(self, values: np.ndarray) -> np.ndarray:
        """The values after the lever."""
        if self.how == "scale":
            return values * self.value
        if self.how == "add":
            return values + self.value
        return np.full_like(values, self.value, dtype=np.float64)


def parse_lever(text: str) -> Lever:
    """Parse ``QUANTITY[:STAGE](+|-|*|=)VALUE[@COLUMN=VALUE]`` into a :class:`Lever`.

    Examples: ``conversion:Visited+0.05@region=North``, ``leads*1.2@market=Spain``,
    ``amount*0.95``, ``dwell:Offer*0.8``.
    """
    m = _LEVER_RE.match(text)
    if m is None:
        raise InputError(
            f"lever {text!r}: cannot read it. Write QUANTITY[:STAGE](+|-|*|=)VALUE[@COLUMN=VALUE], "
            "e.g. 'conversion:Visited+0.05@region=North', 'leads*1.2', 'dwell:Offer*0.8'."
        )
    quantity = m["q"].lower()
    if quantity not in QUANTITIES:
        raise InputError(
            f"lever {text!r}: unknown quantity {m['q']!r}; use one of {', '.join(QUANTITIES)}."
        )
    value = float(m["value"])
    if m["op"] == "-":
        value = -value
    segment: list[tuple[str, str]] = []
    if m["seg"]:
        for part in m["seg"].split(","):
            col, eq, val = part.partition("=")
            if not eq or not col.strip() or not val.strip():
                raise InputError(
                    f"lever {text!r}: the segment filter {part!r} must read COLUMN=VALUE "
                    "(e.g. @region=North)."
                )
            segment.append((col.strip(), val.strip()))
    stage = m["stage"].strip() if m["stage"] else None
    return Lever(quantity, HOWS[m["op"]], value, stage, tuple(segment), text.strip())


def levers_from_frame(
    frame: pd.DataFrame, source: str = "levers.parquet"
) -> dict[str, list[Lever]]:
    """Read a levers table into ``{variant: [Lever, ...]}`` (variants in first-seen order)."""
    missing = [c for c in ("variant", "quantity", "how", "value") if c not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: required column(s) {', '.join(map(repr, missing))} missing (columns "
            f"present: {', '.join(map(str, frame.columns)) or 'none'}). One row per lever: "
            "variant, quantity (leads|conversion|amount|dwell|loss), how (scale|add|set), value, "
            "optional stage and segment columns."
        )
    segs = [c for c in frame.columns if c not in LEVER_COLUMNS]
    out: dict[str, list[Lever]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        where = f"{source}: row {i + 1}"
        variant = row["variant"]
        if variant is None or (isinstance(variant, float) and math.isnan(variant)):
            raise InputError(f"{where}: 'variant' is empty; give every lever a variant name.")
        quantity = str(row["quantity"]).strip().lower()
        if quantity not in QUANTITIES:
            raise InputError(
                f"{where}: quantity {row['quantity']!r} unknown; "
                f"use one of {', '.join(QUANTITIES)}."
            )
        how = str(row["how"]).strip().lower()
        if how not in ("scale", "add", "set"):
            raise InputError(f"{where}: how {row['how']!r} unknown; use scale, add or set.")
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise InputError(f"{where}: value {row['value']!r} is not a finite number.")
        stage = row.get("stage")
        stage = None if stage is None or pd.isna(stage) else str(stage)
        segment = tuple(
            (c, str(row[c])) for c in segs if row[c] is not None and not pd.isna(row[c])
        )
        lever = Lever(quantity, how, value, stage, segment)
        out.setdefault(str(variant), []).append(dataclasses.replace(lever, text=lever.label()))
    return out


def _mask(table: pd.DataFrame, segment: Sequence[tuple[str, str]]) -> np.ndarray:
    mask = np.ones(len(table), dtype=bool)
    for col, val in segment:
        mask &= table[col].astype(object).map(lambda v: v is not None and str(v)).eq(val).to_numpy()
    return mask


def _check_result(lever: Lever, name: str, values: np.ndarray, low: float, high: float) -> None:
    bad = values[(values < low) | (values > high) | ~np.isfinite(values)]
    if bad.size:
        bounds = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise InputError(
            f"lever {lever.label()!r}: pushes {name} to {bad[0]:g}, outside {bounds}. "
            "Use a smaller change."
        )


def apply_lever(scenario: Scenario, lever: Lever) -> Scenario:
    """Return the scenario with one lever applied (validated again).

    Raises
    ------
    InputError
        Unknown stage or segment column, a segment value that matches nothing, or a
        result out of range (a conversion outside [0, 1], a negative amount...).
    """
    name = lever.label()
    funnel = scenario.funnel
    if lever.stage is not None and lever.stage not in funnel:
        raise InputError(
            f"lever {name!r}: unknown stage {lever.stage!r}; the funnel is {', '.join(funnel)}."
        )
    if lever.quantity == "leads" and lever.stage is not None:
        raise InputError(
            f"lever {name!r}: leads enter at the top of the funnel and take no stage; "
            "write e.g. 'leads*1.2'."
        )
    tables = {"deals": scenario.deals, "arrivals": scenario.arrivals, "stages": scenario.stages}
    usable = {
        "leads": ("arrivals",),
        "amount": ("deals",) if lever.stage else ("deals", "arrivals"),
        "conversion": ("deals", "arrivals", "stages"),
        "dwell": ("deals", "arrivals", "stages"),
        "loss": ("deals", "arrivals", "stages"),
    }[lever.quantity]
    for col, val in lever.segment:
        have = [t for t in usable if col in tables[t].columns]
        if not have:
            known = sorted({c for t in usable for c in _segments(scenario, t)})
            raise InputError(
                f"lever {name!r}: unknown segment column {col!r} for {lever.quantity} "
                f"(segment columns: {', '.join(known) or 'none'})."
            )
        if not any(_mask(tables[t], [(col, val)]).any() for t in have):
            raise InputError(f"lever {name!r}: no row has {col}={val}; check the value for typos.")
    if lever.quantity == "leads":
        return _apply_rows(scenario, lever, "arrivals", "leads", np.inf)
    if lever.quantity == "amount":
        sc = _apply_rows(scenario, lever, "deals", "amount", np.inf)
        if lever.stage is None:
            sc = _apply_rows(sc, lever, "arrivals", "amount", np.inf)
        return sc
    return _apply_stages(scenario, lever)


def _segments(scenario: Scenario, table: str) -> tuple[str, ...]:
    return {
        "deals": scenario.deal_segments,
        "arrivals": scenario.arrival_segments,
        "stages": scenario.stage_segments,
    }[table]


def _apply_rows(scenario: Scenario, lever: Lever, table: str, column: str, high: float) -> Scenario:
    frame = getattr(scenario, table)
    segment = list(lever.segment)
    if any(c not in frame.columns for c, _ in segment):
        return scenario  # this table does not carry the segment column: none of its rows match
    mask = _mask(frame, segment)
    if table == "deals" and lever.stage is not None:
        mask &= (frame["stage"] == lever.stage).to_numpy()
    if not mask.any():
        return scenario
    new = frame.copy()
    values = lever.change(new[column].to_numpy(dtype=np.float64)[mask])
    _check_result(lever, f"{table}.{column}", values, 0.0, high)
    new.loc[mask, column] = values
    return scenario.replace(**{table: new})


def _apply_stages(scenario: Scenario, lever: Lever) -> Scenario:
    param = _STAGE_PARAM[lever.quantity]
    high = 1.0 if param == "conversion" else np.inf
    stages = scenario.stages.copy()
    if param == "loss_days":
        stages = _with_loss_columns(scenario, stages, lever)
    for col, _ in lever.segment:
        if col not in stages.columns:
            stages[col] = pd.Series([None] * len(stages), dtype=object, index=stages.index)
    segs = [c for c in stages.columns if c not in STAGE_COLUMNS]
    targets = [lever.stage] if lever.stage else list(scenario.funnel)
    want = dict(lever.segment)
    records: list[dict[str, Any]] = stages.to_dict("records")  # type: ignore[assignment]
    new_rows: list[dict[str, Any]] = []
    filled: set[int] = set()  # the segment's own rows given the change of a wider row
    for stage in targets:
        rows = [i for i in range(len(records)) if records[i]["stage"] == stage]
        for i in rows:
            row = records[i]
            cond = {c: row[c] for c in segs if row[c] is not None}
            if any(c in cond and cond[c] != v for c, v in want.items()):
                continue  # another segment's override: untouched
            if all(cond.get(c) == v for c, v in want.items()):
                # The row already applies only inside the segment: change it in place.
                if i in filled:
                    continue
                if not pd.isna(row[param]) or (param == "loss_days" and not cond):
                    row[param] = float(lever.change(np.array([row[param]]))[0])
                continue
            if pd.isna(row[param]) and not (param == "loss_days" and not cond):
                continue  # this row does not set the quantity: another row supplies it
            # A row wider than the segment: add a narrower copy that carries the change.
            value = row[param]
            copy = dict(row)
            copy.update(want)
            copy["stage"] = stage
            copy[param] = float(lever.change(np.array([value], dtype=np.float64))[0])
            for p in ("conversion", "dwell_days", "dwell_cv", "value_cv", "conversion_n"):
                if p != param:
                    copy[p] = np.nan
            copy["dwell_dist"] = None
            if "loss_days" in copy:
                if param != "loss_days":
                    copy["loss_days"] = np.nan
                copy["loss_cv"], copy["loss_dist"] = np.nan, None
                if "loss_recorded" in copy:
                    copy["loss_recorded"] = np.nan
            own = [j for j in rows if _same_row(copy, records[j], segs)]
            if own:
                # The segment has its own row: it carries the change (changed in place when
                # it sets the quantity; given this row's value, changed, when it sets none).
                if pd.isna(records[own[0]][param]) and own[0] not in filled:
                    records[own[0]][param] = copy[param]
                    filled.add(own[0])
                continue
            if not any(_same_row(copy, r, segs) for r in new_rows):
                new_rows.append(copy)
    new = pd.DataFrame(records + new_rows, columns=list(stages.columns))
    values = new[param].to_numpy(dtype=np.float64)
    changed = values[~np.isnan(values)]
    if param == "loss_days":
        changed = changed[~np.isposinf(changed)]  # losses never recorded stay so
    _check_result(lever, param, changed, 0.0 if param == "conversion" else 1e-9, high)
    for c in segs:
        new[c] = new[c].astype(object).where(new[c].notna(), None)
    return scenario.replace(stages=new)


def _with_loss_columns(scenario: Scenario, stages: pd.DataFrame, lever: Lever) -> pd.DataFrame:
    """The stages table with the loss clock's columns; a lever must find a clock to move."""
    if "loss_days" not in stages.columns:
        stages["loss_days"] = np.nan
        stages["loss_cv"] = np.nan
        stages["loss_dist"] = pd.Series([None] * len(stages), dtype=object, index=stages.index)
    if lever.how != "set":
        targets = [lever.stage] if lever.stage else list(scenario.funnel)
        timed = stages.loc[stages["stage"].isin(targets), "loss_days"].notna()
        if not timed.any():
            which = f"stage {lever.stage!r} has no" if lever.stage else "no stage has a"
            raise InputError(
                f"lever {lever.label()!r}: {which} loss clock of its own (loss_days "
                "empty: deals are lost on the advance clock), so there is none to "
                f"{lever.how}. Set one first, e.g. 'loss:{lever.stage or 'STAGE'}=90'."
            )
    return stages


def _same_row(a: Mapping[str, Any], b: Mapping[str, Any], segs: Sequence[str]) -> bool:
    return a["stage"] == b["stage"] and all(a[c] == b[c] for c in segs)


def apply_levers(scenario: Scenario, levers: Sequence[Lever]) -> Scenario:
    """Apply levers in order and return the variant scenario."""
    for lever in levers:
        scenario = apply_lever(scenario, lever)
    return scenario


def gather_variants(
    scenario: Scenario,
    cli_levers: Sequence[str | Lever] = (),
    table: pd.DataFrame | None = None,
    source: str = "levers.parquet",
) -> dict[str, list[Lever]]:
    """The variants to compare: those of a levers table, then one per command-line lever."""
    variants = levers_from_frame(table, source) if table is not None else {}
    for item in cli_levers:
        lever = parse_lever(item) if isinstance(item, str) else item
        variants[lever.label()] = [lever]
    for name, levers in variants.items():
        if name == "base":
            raise InputError(f"{source}: 'base' names the unchanged scenario; rename the variant.")
        try:
            apply_levers(scenario, levers)  # fail early, naming the lever
        except InputError as exc:
            raise InputError(f"variant {name!r}: {exc}") from None
    return variants


def variant_rows(name: str, levers: Sequence[Lever]) -> pd.DataFrame:
    """One variant's levers as ``levers.parquet`` rows (what :func:`levers_from_frame` reads).

    Columns ``variant``, ``quantity``, ``how``, ``value``, ``stage`` (null: all stages),
    then one column per segment a lever names (null on the other levers' rows).
    """
    if not name.strip() or name.strip() == "base":
        raise InputError(
            f"variant name {name!r}: give the variant a name other than 'base' (the unchanged "
            "scenario) and not empty.",
            parameters=("variant",),
        )
    segs = list(dict.fromkeys(c for lv in levers for c, _ in lv.segment))
    rows = []
    for lv in levers:
        row: dict[str, Any] = {
            "variant": name.strip(),
            "quantity": lv.quantity,
            "how": lv.how,
            "value": float(lv.value),
            "stage": lv.stage,
        }
        row |= {c: dict(lv.segment).get(c) for c in segs}
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*LEVER_COLUMNS, *segs])
    for col in ("variant", "quantity", "how", "stage", *segs):
        frame[col] = frame[col].astype(object)
    frame["value"] = frame["value"].astype(np.float64)
    return frame
