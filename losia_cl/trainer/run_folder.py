"""The run folder (``--out``): whose it is, who holds it.

losia-cl writes only into a folder that is absent, empty, or a losia-cl run folder (one that holds
our ``run.json``); anything else is refused before a byte is written, so a mistyped ``--out`` can
never overwrite or delete someone's files.  While a run or a resumption works in the folder it
holds ``.losia-cl.lock`` (an OS file lock, released when the process ends, even on ``kill -9``),
so a second process on the same folder stops with a one-line error instead of redoing the work.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError
from losia_cl.files import write_error
from losia_cl.results import RUN_FORMAT, RunInfo, read_json

RUN_FILE = "run.json"
#: What every losia-cl run.json format starts with (this version writes results.RUN_FORMAT).
RUN_FORMAT_PREFIX = RUN_FORMAT.split("/")[0] + "/"
LOCK_NAME = ".losia-cl.lock"


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")  # pragma: no cover - the root exists


def _read_run_file(out: Path) -> dict[str, Any]:
    """The JSON of ``out/run.json``; :class:`DataError` if it is not one losia-cl wrote."""
    return read_own_file(out, RUN_FILE, RUN_FORMAT_PREFIX, "run")


def read_own_file(out: Path, own_file: str, format_prefix: str, kind: str) -> dict[str, Any]:
    """The JSON of ``out/<own_file>``; :class:`DataError` if its format does not start with ``format_prefix``."""
    path = out / own_file
    data = read_json(path)
    if not str(data.get("format", "")).startswith(format_prefix):
        raise DataError(f"{path}: not a losia-cl {kind} file (no '{format_prefix}…' format); "
                        f"{out} is not a losia-cl {kind} folder, choose another --out")
    return data


def check_out_folder(out: Path, *, resume: bool) -> RunInfo | None:
    """Refuse an ``--out`` that is not ours; the stored ``run.json`` when resuming, else ``None``.

    A new run needs ``out`` absent or empty (a leftover lock file counts as empty) and writable;
    ``resume`` needs a losia-cl run folder.  Nothing is written.
    """
    stored = check_own_folder(out, resume=resume, own_file=RUN_FILE, format_prefix=RUN_FORMAT_PREFIX, kind="run")
    return None if stored is None else RunInfo.from_json(stored, out / RUN_FILE)


def check_own_folder(out: Path, *, resume: bool, own_file: str, format_prefix: str, kind: str) -> dict[str, Any] | None:
    """The rules of :func:`check_out_folder` for a folder marked by ``own_file`` (``run.json``, ``tune.json``):
    the stored marker's JSON when resuming, else ``None``; ``kind`` names the command in messages."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if not out.exists():
        if resume:
            raise ConfigError(f"--resume: {out} does not exist, so there is no {kind} to continue; "
                              f"{kind} without --resume to start one")
        parent = _nearest_existing(out.parent)
        if not parent.is_dir():
            raise ConfigError(f"--out {out}: cannot be created, {parent} is a file")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: cannot be created, {parent} is not writable")
        return None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the folder is not writable")
    if (out / own_file).exists():
        stored = read_own_file(out, own_file, format_prefix, kind)
        if not resume:
            raise ConfigError(f"{out / own_file} exists: pass --resume to continue that {kind}, or choose another "
                              "--out")
        return stored
    others = sorted(entry.name for entry in out.iterdir() if entry.name != LOCK_NAME)
    if resume:
        raise ConfigError(f"--resume: {out} is not a losia-cl {kind} folder (it has no {own_file}); "
                          f"{kind} without --resume to start one" + (" in a new or empty folder" if others else ""))
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise ConfigError(f"--out {out}: the folder is not empty ({shown}) and is not a losia-cl {kind} folder "
                          f"(no {own_file}); choose a new or empty folder")
    return None


class RunLock:
    """``out/.losia-cl.lock``, held by one process at a time (creating ``out``); usable as a context manager.

    :meth:`acquire` raises :class:`ConfigError` at once when another process holds it.
    """

    def __init__(self, out: Path) -> None:
        from filelock import FileLock

        self.out = out
        self._lock = FileLock(str(out / LOCK_NAME), timeout=0)

    def acquire(self) -> None:
        from filelock import Timeout

        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(self.out, error) from None
        try:
            self._lock.acquire()
        except Timeout:
            raise ConfigError(f"{self.out} is in use by another losia-cl process (it holds "
                              f"{self.out / LOCK_NAME}); wait for it to finish") from None

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
