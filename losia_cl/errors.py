"""Error types raised by losia-cl.

Every error a user can cause (bad configuration, bad data files, unknown names)
is a :class:`LosiaError`, so callers and the CLI can tell user mistakes apart
from bugs.  The concrete types also derive from the built-in exception a
Python user would expect (``ValueError``, ``KeyError``-free on purpose: a
``KeyError`` prints its message quoted).
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from typing import Any

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlong = 24
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def brief(value: Any) -> str:
    """A short ``repr`` of a value read from a file, for one-line error messages (long values cut with ``...``)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**24:
        return f"{'-' if value < 0 else ''}an integer of {len(str(abs(value)))} digits"
    return _repr.repr(value)


class LosiaError(Exception):
    """Base class of every error losia-cl raises on purpose."""


class ConfigError(LosiaError, ValueError):
    """A configuration value is out of range or of the wrong kind.

    The message always names the field and the allowed values.
    """


class DataError(LosiaError, ValueError):
    """An input file or record is missing or malformed.

    The message always names the file and the place in it (line/column or
    record index) and the field at fault.
    """


class WriteError(LosiaError, OSError):
    """An output file could not be written (a full disk, a missing permission).

    The message names the file, the reason and, when known, the free space.
    """


class UnknownNameError(LosiaError, ValueError):
    """A name was looked up in a registry that does not hold it."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; known {kind}s: {listed}")
