"""Names that become file and folder names (tasks, methods): a safe character set, unique after normalisation.

A task or method name ends up in paths such as ``<out>/<method>/predictions/stage1-<task>.jsonl``, so it
must never be able to leave the run folder or create sub-folders: letters and digits (any script), ``_``,
``-``, ``.``, ``+`` and inner spaces; starting with a letter, digit or ``_``; no ``..``; at most
:data:`MAX_NAME_BYTES` bytes in UTF-8.  Two names that differ only in case or Unicode form would
collide on case-insensitive file systems, so :func:`name_key` (NFKC + casefold) must differ too.
Torch-free: the stream types use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from losia_cl.errors import ConfigError

#: Longest allowed name, in UTF-8 bytes (file names hold at most 255 bytes; prefixes need room).
MAX_NAME_BYTES = 120
#: Longest file or folder name losia-cl writes, in UTF-8 bytes: 255 less the room the temporary file of an
#: atomic write takes around it (``.<name>.<16 hex digits>.tmp``).  A name within :data:`MAX_NAME_BYTES`
#: fits it with every prefix and suffix added (``stage<N>-<task>.jsonl``).
MAX_FILE_NAME_BYTES = 255 - len("..0123456789abcdef.tmp")

_SAFE = re.compile(r"[^\W][\w.+\- ]*", re.UNICODE)
RULE = (
    f"use letters, digits, '_', '-', '.', '+' and inner spaces, start with a letter, digit or '_', "
    f"no '..', at most {MAX_NAME_BYTES} bytes"
)


def name_problem(name: object, max_bytes: int = MAX_NAME_BYTES) -> str | None:
    """Why ``name`` cannot be a file-name component of at most ``max_bytes`` bytes (``None`` when it can)."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if "\x00" in name:
        return "contains a NUL character"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if _SAFE.fullmatch(name) is None or name != name.rstrip(" ."):
        return "contains characters outside the safe set"
    if len(name.encode("utf-8")) > max_bytes:
        return f"is longer than {max_bytes} bytes"
    return None


def check_name(kind: str, name: object, *, error: type[Exception] = ConfigError, where: str = "") -> str:
    """``name`` if it is a safe file-name component, else ``error`` naming ``kind`` (and ``where``)."""
    problem = name_problem(name)
    if problem is not None:
        prefix = f"{where}: " if where else ""
        raise error(f"{prefix}{kind} name {name!r} {problem}; {RULE}")
    return name  # type: ignore[return-value]


def name_key(name: str) -> str:
    """The form two names must not share: NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_unique(kind: str, names: Iterable[str], *, error: type[Exception] = ConfigError, where: str = "") -> None:
    """Raise ``error`` if two of ``names`` are equal after :func:`name_key`."""
    seen: dict[str, str] = {}
    for name in names:
        key = name_key(name)
        if key in seen:
            prefix = f"{where}: " if where else ""
            same = "appears twice" if seen[key] == name else f"collides with {seen[key]!r} (case/Unicode form)"
            raise error(f"{prefix}{kind} name {name!r} {same}")
        seen[key] = name
