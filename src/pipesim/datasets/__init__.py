"""Real CRM data shipped with pipesim, so examples and tests run anywhere.

``load_maven_crm()`` returns the Maven Analytics "CRM Sales Opportunities"
dataset as a :class:`~pipesim.calibration.history.History`; ``maven_crm_path()`` is the
folder of its CSV files (for ``pipesim calibrate PATH --format maven``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pipesim.calibration.history import History


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


__all__ = ["load_maven_crm", "maven_crm_path"]
