"""The installed software version, recorded in every file the toolkit writes."""

from importlib import metadata

try:
    __version__ = metadata.version("aimc-calib")
except metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
