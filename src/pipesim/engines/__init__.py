"""Engines run prepared arrays into per-trial outputs: ``numba`` (local threads), ``numpy``."""
