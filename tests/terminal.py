"""The ``pipesim`` command run with stderr on a pseudo-terminal, as a user sees it."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def run_on_pty(args, out, interrupt_after=None):
    """Run the CLI with stderr on a pseudo-terminal; return (code, stderr text, seconds)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipesim.cli", "run", *args, "--out", str(out)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    text = b""
    start = time.monotonic()
    sent_at = None
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        chunk = b""
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                ready = []
            text += chunk
        if interrupt_after and sent_at is None and interrupt_after(text):
            proc.send_signal(signal.SIGINT)
            sent_at = time.monotonic()
        if proc.poll() is not None and not chunk:
            break
        assert time.monotonic() - start < 300
    os.close(master)
    took = time.monotonic() - (sent_at or start)
    return proc.returncode, text.decode(errors="replace"), took
