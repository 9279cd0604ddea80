"""Safe writes into a run folder: atomic replacement, paths confined to the folder, plain errors.

Every file is written to a temporary file next to it (``.<name>.<random>.tmp``, created with mode
0666 so the user's umask decides the final permissions), flushed, fsynced and renamed over the
target, so readers see the old file or the whole new one.  A failed write (disk full, no
permission) removes the temporary file and raises :class:`~losia_cl.errors.StorageError` naming
the path (and the free space when the disk is full).  :func:`inside` builds paths that provably
lie inside a folder; :func:`remove_stale_temp_files` clears what a killed process left behind.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from losia_cl.errors import ConfigError, StorageError
from losia_cl.names import name_problem

logger = logging.getLogger(__name__)

_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8,16}\.tmp")


def inside(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root/part/...``, each part a safe single name, resolved (symlinks followed) inside ``root``.

    Raises :class:`ConfigError` when a part is not a safe name (:mod:`losia_cl.names`) or the
    resolved path would lie outside ``root``.
    """
    root = Path(root)
    for part in parts:
        problem = name_problem(part)
        if problem is not None:
            raise ConfigError(f"refusing to write {part!r} under {root}: the name {problem}")
    path = root.joinpath(*parts)
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise ConfigError(f"refusing to write {path}: it resolves to {path.resolve()}, outside {base}")
    return path


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown free space"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def storage_error(path: Path, error: OSError) -> StorageError:
    """A one-line :class:`StorageError` for ``error`` raised while writing ``path``."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = path.parent if path.parent.exists() else Path(path.anchor or ".")
        return StorageError(f"cannot write {path}: no space left on the device ({_free_space(folder)} in {folder})")
    return StorageError(f"cannot write {path}: {error.strerror or error}")


def _open_temp(path: Path) -> tuple[int, Path]:
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise StorageError(f"cannot write {path}: no free temporary file name next to it")  # pragma: no cover


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the whole new one."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(path)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise storage_error(path, error) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


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


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    import torch

    def save(handle: IO[bytes]) -> None:
        noting = _NotingErrors(handle)
        try:
            torch.save(obj, noting)
        except RuntimeError:
            if noting.error is not None:
                raise noting.error from None
            raise

    return atomic_write(path, save)


def remove_stale_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files interrupted writes left under ``root`` (symlinks are not followed)."""
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in files:
            if _TEMP.fullmatch(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), root)
    return removed
