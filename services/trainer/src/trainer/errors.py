"""Expected failures: main() prints them as one line and exits 1, without a traceback."""

from __future__ import annotations


class TrainerError(Exception):
    """A problem with the input, the flags or the environment that the user can fix."""


class StorageError(TrainerError):
    """A URI that cannot be read or written: the message starts with the URI."""


class ValidationError(TrainerError):
    """A dataset that breaks the schema: the message names the file and the problem."""
