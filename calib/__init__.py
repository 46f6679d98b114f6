"""User-facing layer: CLI, measurement campaigns, dataset I/O, presets and validation."""

from calib._version import __version__

__all__ = ["__version__"]
