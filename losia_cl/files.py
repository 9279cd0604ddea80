"""Atomic file writes (a temporary file in the same folder, fsync, then rename), kept inside a folder, and
reads that never block.

A reader (or a crash, or a full disk) sees either the old file or the whole
new one, never a truncated file.  :func:`atomic_write_files` writes several
files as one group: every temporary file is complete before the first rename,
so a failure while writing leaves all the old files as they were.
:class:`DeferredSync` does the fsync and the rename on a background thread, in submission order:
a large file (a checkpoint) costs the caller only the copy into the page cache while the disk
catches up, and until its rename readers still see the previous file.

Every writer takes ``root``: the folder the file must stay in.  Right before a folder is created, the
temporary file is opened and it is renamed into place, the folder's real path (every symbolic link
resolved at that moment) is compared with ``root``'s, so a link planted in a run folder can never send
a write elsewhere.  :func:`open_regular` opens a file for reading without blocking and refuses
anything but a regular file (a FIFO or a device in place of a file would block a reader forever).

Torch-free: the trainer and the report both use it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn

from losia_cl.errors import ConfigError, DataError, WriteError

__all__ = ["DeferredSync", "atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_write_files", "check_within", "is_within", "open_regular", "write_error"]

#: bytes handed to one ``write`` call.
_CHUNK = 1 << 20


def _temp_beside(path: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, created with mode 0666: the umask sets its permissions."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies inside ``root`` once every symbolic link of both is resolved (as it is now)."""
    base = os.path.realpath(root)
    return os.path.commonpath([base, os.path.realpath(path)]) == base


def check_within(path: Path, root: str | os.PathLike[str] | None) -> None:
    """Refuse to write ``path`` unless its folder, with every symbolic link resolved now, lies inside ``root``.

    Raises :class:`ConfigError` naming where the path leads; ``root`` ``None`` checks nothing.
    """
    if root is not None and not is_within(path.parent, root):
        raise ConfigError(f"refusing to write {path}: a symbolic link leads it to "
                          f"{Path(os.path.realpath(path.parent)) / path.name}, outside {os.path.realpath(root)}; "
                          "remove the link")


def _make_folder(path: Path, root: str | os.PathLike[str] | None) -> list[Path]:
    """Create the missing folders above ``path`` inside ``root``; the ones created, outermost first."""
    check_within(path, root)
    missing = []
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    check_within(path, root)
    return list(reversed(missing))


def _replace(tmp: Path, path: Path, root: str | os.PathLike[str] | None) -> None:
    check_within(path, root)
    os.replace(tmp, path)


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """``path`` opened for binary reading; :class:`DataError` if it is not a regular file (checked on the open file).

    The open does not wait for a writer (``O_NONBLOCK``), so a FIFO or a device in place of a file is
    refused at once instead of blocking the reader forever.  ``OSError`` (a missing file) passes through.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
                "a device or socket"
            raise DataError(f"{path}: not a regular file ({kind}); refusing to read it")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return open(fd, "rb")  # noqa: SIM115 - the caller closes it
    except BaseException:
        os.close(fd)
        raise


def _fill(fd: int, write: Callable[[IO[bytes]], None], sync: bool = True) -> None:
    with os.fdopen(fd, "wb") as handle:
        write(handle)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *,
                 root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the whole new one.

    An ``OSError`` (a full disk, a missing permission) removes the temporary file and raises
    :class:`~losia_cl.errors.WriteError` naming ``path`` and the free space.  With ``root`` the file
    must stay inside that folder (:func:`check_within`, checked when the file is opened and renamed).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        _make_folder(path, root)
        fd, tmp = _temp_beside(path)
        _fill(fd, write)
        _replace(tmp, path, root)
    except BaseException as error:
        _discard_and_raise(error, tmp, path)
    return path


def _discard_and_raise(error: BaseException, tmp: Path | None, path: Path) -> NoReturn:
    """Remove the temporary file of a failed write of ``path`` and raise: an OSError as a WriteError."""
    if tmp is not None:
        tmp.unlink(missing_ok=True)
    if isinstance(error, OSError) and not isinstance(error, WriteError):
        raise write_error(path, error) from None
    raise error


def _sync_and_replace(tmp: Path, path: Path, root: str | os.PathLike[str] | None) -> None:
    try:
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        _replace(tmp, path, root)
    except BaseException as error:
        _discard_and_raise(error, tmp, path)


class DeferredSync:
    """Atomic writes whose fsync and rename run on one background thread, in the order submitted.

    :meth:`write` returns once the data is written (in the page cache); :meth:`wait` blocks until
    every submitted file is in place and re-raises a failure of the background work.  A process
    killed before a rename leaves the previous file in place.
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="losia-cl-sync")
        self._pending: list[Any] = []

    def write(self, path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *,
              root: str | os.PathLike[str] | None = None) -> Path:
        """Write ``path`` through ``write(file)`` now; sync and rename it into place in the background."""
        path = Path(path)
        self._collect(block=False)
        tmp: Path | None = None
        try:
            _make_folder(path, root)
            fd, tmp = _temp_beside(path)
            _fill(fd, write, sync=False)
        except BaseException as error:
            _discard_and_raise(error, tmp, path)
        self._pending.append(self._executor.submit(_sync_and_replace, tmp, path, root))
        return path

    def wait(self) -> None:
        """Block until every submitted file is synced and in place."""
        self._collect(block=True)

    def close(self) -> None:
        """:meth:`wait`, then stop the background thread."""
        self.wait()
        self._executor.shutdown()

    def _collect(self, block: bool) -> None:
        done = [f for f in self._pending if block or f.done()]
        self._pending = [f for f in self._pending if f not in done]
        for future in done:
            future.result()  # re-raises the background failure


def _write_bytes(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(handle: IO[bytes]) -> None:
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            handle.write(view[start:start + _CHUNK])

    return write


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       root: str | os.PathLike[str] | None = None) -> Path:
    return atomic_write(path, _write_bytes(data), root=root)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, root: str | os.PathLike[str] | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), root=root)


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, root: str | os.PathLike[str] | None = None) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", root=root)


def write_error(path: Path, error: OSError) -> WriteError:
    """A one-line :class:`WriteError` naming ``path``, the reason and the free space of its file system."""
    reason = error.strerror or str(error) or type(error).__name__
    message = f"{path}: cannot write it: {reason}"
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        pass
    else:
        message += f" ({free / 2**20:,.1f} MiB free in {folder})"
    result = WriteError(message)
    result.errno = error.errno
    return result


def atomic_write_files(files: Mapping[Path, bytes], *, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write every ``path -> bytes`` of ``files``, all complete or none changed as far as the disk decides.

    Each file goes to a temporary file beside it first (written and synced);
    only when all of them are complete are they renamed over the targets.  An
    ``OSError`` while writing (a full disk, a missing permission) removes the
    temporary files, leaves every old file untouched and raises
    :class:`~losia_cl.errors.WriteError` naming the file; so does a path that
    would leave ``root`` (:func:`check_within`), as a :class:`ConfigError`.
    """
    temps: list[tuple[Path, Path]] = []
    created: list[Path] = []  # folders made here, removed again (when empty) after a failure
    current: Path | None = None
    try:
        for path, data in files.items():
            current = path
            created.extend(_make_folder(path, root))
            fd, tmp = _temp_beside(path)
            temps.append((tmp, path))
            _fill(fd, _write_bytes(data))
        for tmp, path in temps:
            current = path
            _replace(tmp, path, root)
    except BaseException as error:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        if isinstance(error, OSError):
            raise write_error(current if current is not None else Path("."), error) from None
        raise
    return [path for _, path in temps]

