"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

:class:`DeferredSync` does the fsync and the rename on a background thread, in submission order,
so a large checkpoint costs the caller only the copy into the page cache while the disk catches
up; until its rename, readers still see the previous file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _write_temporary(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """``write(file)`` into a new temporary file next to ``path`` (flushed, not yet synced); returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _sync_and_replace(tmp: Path, path: Path) -> None:
    try:
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the whole new one."""
    path = Path(path)
    _sync_and_replace(_write_temporary(path, write), path)
    return path


class DeferredSync:
    """Atomic writes whose fsync and rename run on one background thread, in the order submitted.

    :meth:`write` returns once the data is in the page cache; :meth:`wait` blocks until every
    submitted file is in place (and re-raises a failure of the background work).  Use it for
    large files the caller does not read back at once (checkpoints); a process killed before a
    rename leaves the previous file in place.
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="losia-cl-sync")
        self._pending: list[Any] = []

    def write(self, path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
        path = Path(path)
        self._collect(block=False)
        tmp = _write_temporary(path, write)
        self._pending.append(self._executor.submit(_sync_and_replace, tmp, path))
        return path

    def wait(self) -> None:
        """Block until every submitted file is synced and in place."""
        self._collect(block=True)

    def close(self) -> None:
        self.wait()
        self._executor.shutdown()

    def _collect(self, block: bool) -> None:
        done = [f for f in self._pending if block or f.done()]
        self._pending = [f for f in self._pending if f not in done]
        for future in done:
            future.result()  # re-raises the background failure


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def atomic_torch_save(path: str | os.PathLike[str], obj: Any, sync: DeferredSync | None = None) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; with ``sync`` the fsync and rename happen in its background."""
    import torch

    if sync is not None:
        return sync.write(path, lambda f: torch.save(obj, f))
    return atomic_write(path, lambda f: torch.save(obj, f))
