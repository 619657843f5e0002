"""Which files of a results folder belong to the run a report is about.

Every command writes into ``--out results`` by default, so one folder may hold a
comparison of another scenario, or a tornado run with other trials. A file belongs to
the run of ``summary.parquet`` when its identity matches: the scenario fingerprint
(:mod:`pipesim.io.fingerprint`), the trials and the seed.
"""

from __future__ import annotations

from collections.abc import Mapping

FINGERPRINT = "scenario_fingerprint"
IDENTITY = (FINGERPRINT, "trials", "seed")


def _count(value: str) -> str:
    return f"{int(value):,}" if value.isdigit() else value


def _scenario(settings: Mapping[str, str]) -> str:
    name = settings.get("scenario_name") or settings.get("scenario") or "unnamed"
    return f"{name}, fingerprint {settings.get(FINGERPRINT, 'none')}"


def mismatch(run: Mapping[str, str], other: Mapping[str, str]) -> str | None:
    """Why a file with settings ``other`` is not of the run with settings ``run`` (None: it is).

    The fingerprints must agree; a run written before fingerprints existed (neither
    has one) is matched on its scenario folder instead. Trials and seed must agree.
    """
    if not other:
        return "it carries no pipesim settings (not written by pipesim), so it may be any run"
    mine, theirs = run.get(FINGERPRINT), other.get(FINGERPRINT)
    if mine != theirs:
        if mine is None or theirs is None:
            older = "the run (summary.parquet)" if mine is None else "it"
            return (
                f"{older} carries no scenario fingerprint (written by an older pipesim), "
                "so its scenario cannot be told"
            )
        return f"another scenario ({_scenario(other)}; this run: {_scenario(run)})"
    if mine is None and run.get("scenario") != other.get("scenario"):
        return f"another scenario ({other.get('scenario')}; this run: {run.get('scenario')})"
    differ = [k for k in ("trials", "seed") if run.get(k) != other.get(k)]
    if differ:
        theirs_s = ", ".join(f"{k} {_count(other.get(k, 'none'))}" for k in differ)
        mine_s = ", ".join(f"{k} {_count(run.get(k, 'none'))}" for k in differ)
        return f"other settings ({theirs_s}; this run: {mine_s})"
    return None
