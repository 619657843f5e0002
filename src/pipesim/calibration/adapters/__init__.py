"""CRM exports -> the generic history format (one module per CRM).

``read_history(path, events=None, format="generic", stages=None)`` picks the
adapter; each returns a validated :class:`~pipesim.calibration.history.History` whose
``issues`` count every row the adapter or the generic rules set aside.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pipesim.calibration.history import History
from pipesim.errors import InputError

FORMATS = ("generic", "salesforce", "hubspot", "pipedrive", "maven", "ibm")


def read_history(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None = None,
    *,
    format: str = "generic",
    stages: Sequence[str] | None = None,
) -> History:
    """Read a CRM export as a :class:`~pipesim.calibration.history.History`.

    Parameters
    ----------
    path : path
        The deals export (CSV), or for ``maven`` the folder of its four CSV files.
    events : path, optional
        Stage history (generic events, or Salesforce OpportunityHistory).
    format : {"generic", "salesforce", "hubspot", "pipedrive", "maven", "ibm"}
        Which CRM wrote the export.
    stages : list of str, optional
        Open stages in funnel order (top first); otherwise inferred.

    Raises
    ------
    InputError
        When the file cannot be read or lacks the columns of its format.
    """
    from pipesim.calibration.adapters import generic, hubspot, ibm, maven, pipedrive, salesforce

    readers = {
        "generic": generic.read,
        "salesforce": salesforce.read,
        "hubspot": hubspot.read,
        "pipedrive": pipedrive.read,
        "maven": maven.read,
        "ibm": ibm.read,
    }
    if format not in readers:
        raise InputError(
            f"format={format!r}: unknown; choose one of {', '.join(FORMATS)}.",
            parameters=("format",),
        )
    if events is not None and format not in ("generic", "salesforce"):
        raise InputError(
            f"events= is read with format=generic or format=salesforce only, not {format!r}: "
            "the other exports carry no stage history. Leave events= out.",
            parameters=("events", "format"),
        )
    return readers[format](path, events, stages)


__all__ = ["FORMATS", "read_history"]
