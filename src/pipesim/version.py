"""The installed pipesim's version, written into every results file."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pipesim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
