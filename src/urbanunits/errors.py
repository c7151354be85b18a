"""Errors raised for user mistakes.

Every error a user can fix (a missing file, a bad config key, data in the wrong CRS...) is a
:class:`UserError`. The command line prints it as one line,
``error: <where>: <what> — <what to do>``, and exits with status 2 without a traceback.
Subclasses also inherit the matching built-in so that ``except ValueError`` keeps working in
notebooks.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CRSError",
    "ConfigError",
    "DataError",
    "EmptyInputError",
    "InputFileError",
    "OutputError",
    "RunLockedError",
    "UserError",
]


class UserError(Exception):
    """A problem with the user's inputs, reported as one line.

    Parameters
    ----------
    where
        The file, config key, layer/column or id at fault.
    what
        What is wrong.
    fix
        What the user should do about it.
    """

    def __init__(self, where: str | Path, what: str, fix: str = "") -> None:
        self.where = str(where)
        self.what = what
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Return the message as ``<where>: <what> — <fix>`` on one line."""
        text = f"{self.where}: {self.what}"
        if self.fix:
            text += f" — {self.fix}"
        return " ".join(text.split())


class ConfigError(UserError, ValueError):
    """A config key is unknown, missing, of the wrong type or out of range."""


class InputFileError(UserError, OSError):
    """An input file is missing, unreadable or malformed."""


class DataError(UserError, ValueError):
    """Input data are readable but unusable (empty, wrong columns, invalid geometry)."""


class CRSError(UserError, ValueError):
    """Data have no CRS, an unknown CRS, or a geographic CRS where metres are needed."""


class EmptyInputError(DataError):
    """Valid input that holds nothing for a stage to work on (no communities, no facilities).

    ``urbanunits all`` skips the stage (and those that need it), writes the others and exits
    with status 3; a command for that one stage stops with status 2.
    """


class OutputError(UserError, OSError):
    """An output cannot be written: read-only or missing folder, disk full, file in use."""


class RunLockedError(OutputError):
    """Another run is writing the same outputs (same ``output.dir`` and ``name``)."""
