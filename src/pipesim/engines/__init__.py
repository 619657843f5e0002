"""Engines: a scenario's kernel inputs run into per-trial outputs; by name in :mod:`.registry`."""
