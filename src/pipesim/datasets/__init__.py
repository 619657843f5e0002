"""CRM data shipped with pipesim, so examples and tests run anywhere.

``load_maven_crm()`` returns the Maven Analytics "CRM Sales Opportunities"
dataset as a :class:`~pipesim.calibration.history.History`; ``maven_crm_path()`` is the
folder of its CSV files (for ``pipesim calibrate PATH --format maven``).
``load_example_history()`` is the generated example history the README's calibrate
example reads (:mod:`pipesim.datasets.example_history`; not real data);
``write_example_history(DIR)`` copies its ``deals.csv`` and ``events.csv`` into DIR.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from pipesim.calibration.history import History
from pipesim.errors import InputError

EXAMPLE_FILES = ("deals.csv", "events.csv")


def maven_crm_path() -> Path:
    """The folder holding the vendored Maven CRM CSV files."""
    return Path(str(resources.files("pipesim.datasets").joinpath("maven_crm")))


def load_maven_crm() -> History:
    """The Maven Analytics "CRM Sales Opportunities" dataset as a history.

    A B2B pipeline of a fictitious computer-hardware seller: 8,800
    opportunities (sales_pipeline.csv) engaged 2016-10 .. 2017-12 and closed
    2017-03 .. 2017-12, with products.csv (list prices), sales_teams.csv
    (manager, regional office) and accounts.csv. Read through the ``maven``
    adapter (:mod:`pipesim.calibration.adapters.maven`: one open stage, Engaging; open
    deals valued at their product's list price).

    Source: Maven Analytics Data Playground, "CRM Sales Opportunities"
    (https://mavenanalytics.io/data-playground), files extracted from the
    original download zip as kept in github.com/kisaraF/CRM-Sales_Analysis
    (commit b3502afabfeddc2c47f3f593dea87ce1a2422a31,
    Other/CRM+Sales+Opportunities.zip). sha256 of sales_pipeline.csv:
    825ce8f6c32d4009548b468df3173d55a46fd73f2531f532c5459371dc52adf2.

    Licence: listed by Maven Analytics as Public Domain (stated second-hand in
    a third-party README; the company is fictitious). Redistributed here with
    attribution to Maven Analytics.

    Returns
    -------
    History
    """
    from pipesim.calibration.adapters.maven import read

    return read(maven_crm_path(), None, None)


def example_history_path() -> Path:
    """The folder holding the generated example history (``deals.csv``, ``events.csv``)."""
    return Path(str(resources.files("pipesim.datasets").joinpath("example_crm")))


def load_example_history() -> History:
    """The generated example history (generic format, stages Lead, Demo, Proposal).

    1,500 deals of a fictitious seller in four regions, created 2016-01-01 to
    2017-06-30 and exported on 2017-07-01, drawn from a known model
    (:func:`pipesim.datasets.example_history.generate`). Not real CRM data.
    """
    from pipesim.calibration.adapters.generic import read

    folder = example_history_path()
    return read(folder / "deals.csv", folder / "events.csv", ("Lead", "Demo", "Proposal"))


def write_example_history(directory: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Copy the example history's ``deals.csv`` and ``events.csv`` into ``directory``.

    Files already there are refused unless ``force``.
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the example history.")
    clash = [name for name in EXAMPLE_FILES if (out / name).exists()]
    if clash and not force:
        raise InputError(
            f"{out} already holds {', '.join(clash)}; choose another folder or add force=True "
            "to overwrite them.",
            parameters=("force",),
        )
    out.mkdir(parents=True, exist_ok=True)
    return [
        Path(shutil.copyfile(example_history_path() / name, out / name)) for name in EXAMPLE_FILES
    ]


__all__ = [
    "example_history_path",
    "load_example_history",
    "load_maven_crm",
    "maven_crm_path",
    "write_example_history",
]
