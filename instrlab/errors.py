"""Errors that the command line turns into one-line messages."""

from __future__ import annotations


class InstrlabError(Exception):
    """A user-facing error: its message names the problem and the fix, on one line."""


class UnknownNameError(InstrlabError, KeyError):
    """A registry lookup for a name nobody registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(InstrlabError):
    """A plugin that failed to import or declared something malformed."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (its type name if it has none), cut to ``limit``."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
