"""What a long wait looks like: a progress bar after about 2 seconds, and the compile notice.

The engines report finished trials through :class:`Progress`; the bar (tqdm,
on stderr) appears only when a run lasts longer than ``DELAY`` seconds, and
never when output is not a terminal or the user asked for quiet.
:func:`compile_notice` says once, on stderr, that numba is compiling the kernels
(the first run after an install), and nothing when they load from numba's cache.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TextIO

DELAY = 2.0  # seconds before the bar appears
# A cold `pipesim run` of the demo on the 2-core machine the README names (README, Performance).
COMPILE_SECONDS = 25
COMPILE_NOTICE = (
    f"Compiling pipesim's kernels once (about {COMPILE_SECONDS} s on 2 cores; "
    "later runs load them at once)..."
)


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
    total : int or None
        Trials to run (None: not known in advance; the bar counts without an end).
    enabled : bool
        Draw a bar at all (see :func:`wanted`).
    desc : str
        Label in front of the bar.
    unit : str
        What is counted.
    """

    def __init__(
        self, total: int | None, enabled: bool, desc: str = "simulating", unit: str = "trial"
    ) -> None:
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
                unit=unit,
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


@contextlib.contextmanager
def compile_notice(enabled: bool, stream: TextIO | None = None) -> Iterator[None]:
    """Print :data:`COMPILE_NOTICE` once when numba starts compiling one of pipesim's kernels.

    numba sends a ``numba:compile`` event only when it compiles (a cache miss); a
    kernel loaded from its on-disk cache sends none, so a warm run prints nothing.
    """
    if not enabled:
        yield
        return
    from numba.core import event

    shown: list[bool] = []

    class _Listener(event.Listener):
        def on_start(self, e: event.Event) -> None:
            module = getattr(e.data["dispatcher"].py_func, "__module__", "") or ""
            if not shown and module.startswith("pipesim."):
                shown.append(True)
                print(COMPILE_NOTICE, file=stream or sys.stderr, flush=True)

        def on_end(self, e: event.Event) -> None:
            pass

    with event.install_listener("numba:compile", _Listener()):
        yield
