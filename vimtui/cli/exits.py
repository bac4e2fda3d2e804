"""What every vimtui command exits with, and the one error that means "you asked for something wrong"."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """The exit statuses of every command (README: the CLI)."""

    OK = 0
    FAILED = 1
    """An action failed or was refused, or a report found nothing in its window."""
    USAGE = 2
    """Bad arguments or a bad config file: nothing was done."""
    UNREACHABLE = 3
    """A host could not be reached (or did not answer in time)."""


class UsageError(Exception):
    """A request that cannot be carried out as written (a host or VM that does not exist, a question asked
    without a terminal to answer it): printed as "vimtui: error: ..." with exit status 2."""
