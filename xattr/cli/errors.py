"""The one kind of error the command line reports as a user's mistake."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in the command line or its files: printed as one line,
    ``xattr: error: <message>``, exit code 2 (no traceback unless ``--debug``)."""


class RunError(Exception):
    """A failure while running (the model or an explainer failed on the inputs):
    printed as one line, ``xattr: error: <message>``, exit code 1."""


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and message, whitespace collapsed, at most
    ``limit`` characters of message (for TorchScript's errors, whose message is the
    script's traceback, the original error on its last line).

    Example:
        >>> one_line(ValueError("bad   value"))
        'ValueError: bad value'
    """
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    if lines and "TorchScript interpreter" in lines[0]:
        return " ".join(lines[-1].split())[:limit]
    text = " ".join(" ".join(lines).split())
    return f"{type(e).__name__}: {text[:limit]}" if text else type(e).__name__
