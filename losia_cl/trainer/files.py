"""Writes into a run folder: paths confined to the folder, no leftovers, checkpoints via torch.save.

The atomic writers themselves are torch-free and live in :mod:`losia_cl.files` (re-exported here):
a temporary file next to the target (created with mode 0666, so the user's umask decides the
final permissions), flushed, fsynced and renamed over it; a failed write removes the temporary
file and raises :class:`~losia_cl.errors.WriteError` naming the path and the free space.
:func:`inside` builds paths that provably lie inside a folder; :func:`remove_stale_temp_files`
clears what a killed process left behind.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import IO, Any

from losia_cl.errors import ConfigError
from losia_cl.files import DeferredSync, atomic_write, atomic_write_json, atomic_write_text, is_within
from losia_cl.names import MAX_FILE_NAME_BYTES, name_problem

__all__ = ["DeferredSync", "atomic_write", "atomic_write_json", "atomic_write_text", "atomic_torch_save", "inside",
           "remove_stale_temp_files"]

logger = logging.getLogger(__name__)

#: The temporary files of :mod:`losia_cl.files`: ``.<name>.<8 to 16 random characters>.tmp``.
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8,16}\.tmp")


def inside(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root/part/...``, each part a safe single name, resolved (symlinks followed) inside ``root``.

    Raises :class:`ConfigError` when a part is not a safe name (:mod:`losia_cl.names`, up to
    :data:`~losia_cl.names.MAX_FILE_NAME_BYTES` bytes) or the resolved path would lie outside ``root``.
    The writers check again when they open the file (their ``root`` argument).
    """
    root = Path(root)
    for part in parts:
        problem = name_problem(part, MAX_FILE_NAME_BYTES)
        if problem is not None:
            raise ConfigError(f"refusing to write {part!r} under {root}: the name {problem}")
    path = root.joinpath(*parts)
    if not is_within(path, root):
        raise ConfigError(f"refusing to write {path}: it resolves to {path.resolve()}, outside {root.resolve()}")
    return path


class _NotingErrors:
    """A file handle that remembers the OSError of a failed write (torch.save hides it in a RuntimeError)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def atomic_torch_save(path: str | os.PathLike[str], obj: Any, sync: DeferredSync | None = None, *,
                      root: str | os.PathLike[str] | None = None) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (inside ``root``); with ``sync`` the fsync and rename happen in
    its background."""
    import torch

    def save(handle: IO[bytes]) -> None:
        noting = _NotingErrors(handle)
        try:
            torch.save(obj, noting)
        except RuntimeError:
            if noting.error is not None:
                raise noting.error from None
            raise

    if sync is not None:
        return sync.write(path, save, root=root)
    return atomic_write(path, save, root=root)


def remove_stale_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files interrupted writes left under ``root`` (symlinks are not followed)."""
    removed = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if _TEMP.fullmatch(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), root)
    return removed
