"""The one kind of error the command line reports as a user's mistake."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in the command line or its files: printed as one line,
    ``xattr: error: <message>``, exit code 2 (no traceback unless ``--debug``)."""


class RunError(Exception):
    """A failure while running (the model or an explainer failed on the inputs):
    printed as one line, ``xattr: error: <message>``, exit code 1."""
