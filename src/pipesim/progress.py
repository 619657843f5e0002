"""A progress bar for long runs: shown after about 2 seconds, on a terminal only.

The engines report finished trials through :class:`Progress`; the bar (tqdm,
on stderr) appears only when a run lasts longer than ``DELAY`` seconds, and
never when output is not a terminal or the user asked for quiet.
"""

from __future__ import annotations

import shutil
import sys
from types import TracebackType
from typing import Any

DELAY = 2.0  # seconds before the bar appears


def wanted(quiet: bool = False) -> bool:
    """Whether a bar should be shown: not quiet, and stderr is a terminal."""
    if quiet:
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class Progress:
    """Count finished trials; draw a bar when ``enabled`` and the run is long.

    Parameters
    ----------
    total : int
        Trials to run.
    enabled : bool
        Draw a bar at all (see :func:`wanted`).
    desc : str
        Label in front of the bar.
    """

    def __init__(self, total: int, enabled: bool, desc: str = "simulating") -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # the bar is a nicety: no tqdm, no bar
                return
            # A terminal that reports no size (0 x 0) would get no bar at all from tqdm.
            size = shutil.get_terminal_size()
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit="trial",
                delay=DELAY,
                file=sys.stderr,
                leave=False,
                ncols=size.columns if size.columns > 0 else 80,
                nrows=size.lines if size.lines > 1 else 24,
            )

    def update(self, trials: int) -> None:
        """Record ``trials`` more finished trials."""
        self.done += trials
        if self._bar is not None:
            self._bar.update(trials)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def quiet_progress(total: int) -> Progress:
    """A progress counter that never draws."""
    return Progress(total, enabled=False)
