"""Errors by cause, and the warning, that tell the user what went wrong and what to do.

Every error is a :class:`PipesimError`; its type says the cause and carries the
exit code the command line maps it to:

=============================  =========  ==========================================
type                           exit code  cause
=============================  =========  ==========================================
:class:`InputError`            2          bad input: a file, table, column or argument
:class:`ScenarioError`         2          a scenario table (an :class:`InputError`)
:class:`MissingDependencyError` 3         an optional extra is not installed
:class:`ClusterError`          4          a Dask scheduler cannot be reached
=============================  =========  ==========================================

Library messages name Python parameters as ``by=...``; ``parameters`` lists the
ones a message is about, so that the command line can write its own spelling
(``--by ...``) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# The optional extras (pyproject.toml) and the packages each brings.
EXTRAS = {
    "report": ("matplotlib", "openpyxl"),
    "dask": ("dask[distributed]", "tqdm"),
    "app": ("starlette", "uvicorn", "matplotlib", "openpyxl"),
}


class PipesimError(Exception):
    """Something pipesim cannot do as asked: the message says where and what to do."""

    exit_code = 1

    def __init__(self, message: str, *, parameters: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.parameters = tuple(parameters)


class InputError(PipesimError, ValueError):
    """Bad input (a file, table, column or argument): the message names it and the fix."""

    exit_code = 2


class ScenarioError(InputError):
    """A scenario table (stages, deals, arrivals, scenario) is invalid."""


class MissingDependencyError(PipesimError, ImportError):
    """An optional package is not installed: the message gives the install command."""

    exit_code = 3


class ClusterError(PipesimError, ConnectionError):
    """A Dask scheduler cannot be reached: the message says how to start one or go local."""

    exit_code = 4


class PipesimWarning(UserWarning):
    """Something pipesim can run with, but that the user should know about."""


def show_rows(values: object, rows: object, limit: int = 5) -> str:
    """Format the first offending rows as ``row 3 ('x'), row 7 ('y')`` for a message.

    ``rows`` are 0-based positions in the table; they are shown 1-based, as a
    spreadsheet would number the data rows.
    """
    pairs = list(zip(list(rows), list(values), strict=True))  # type: ignore[call-overload]
    shown = ", ".join(
        f"row {int(r) + 1} ({getattr(v, 'item', lambda v=v: v)()!r})" for r, v in pairs[:limit]
    )
    more = len(pairs) - limit
    if more > 0:
        shown += f" and {more} more"
    return shown


def install_hint(extra: str) -> str:
    """How to install an optional extra, from a clone of pipesim as well as from an index.

    An editable install (``pip install -e .`` in a clone) gets the command with the
    clone's path, which pip can read; both forms end with the packages alone, which
    install anywhere.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "src" / "pipesim").is_dir():
        command = f'pip install -e "{root}[{extra}]"'
    else:
        command = f'pip install "pipesim[{extra}]"'
    packages = " ".join(f'"{p}"' if "[" in p else p for p in EXTRAS[extra])
    return f"Install the {extra} extra: {command} (or the packages alone: pip install {packages})."
