"""The error type the CLI turns into a one-line message (never a traceback)."""


class CalibError(Exception):
    """A problem the user can fix: bad input file, wrong option, unreachable instrument."""
