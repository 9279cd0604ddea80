"""The run folder (``--out``): whose it is, who holds it.

losia-cl writes only into a folder that is absent, empty, or a losia-cl run folder (one that holds
our ``run.json``); anything else is refused before a byte is written, so a mistyped ``--out`` can
never overwrite or delete someone's files.  While a run or a resumption works in the folder it
holds ``.losia-cl.lock`` (an OS file lock, released when the process ends, even on ``kill -9``),
so a second process on the same folder stops with a one-line error instead of redoing the work.
A folder holding a symbolic link that leads out of it is refused too (losia-cl would write through it),
and so is a lock that is not a regular file.  :func:`check_seeds_folder` applies the same rules to the
parent folder of ``run --seeds`` (the one holding ``seeds.json``), :func:`check_own_folder` to the folder of
another command marked by its own file (``tune`` and its ``tune.json``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError
from losia_cl.files import is_within, write_error
from losia_cl.multiseed import SEEDS_FILE, read_seeds_file, seed_run_dirs
from losia_cl.results import RUN_FORMAT, RunInfo, read_json
from losia_cl.trainer.wandb_log import WANDB_DIR

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
    run_file = out / RUN_FILE
    data = read_json(run_file)
    if not str(data.get("format", "")).startswith(RUN_FORMAT_PREFIX):
        raise DataError(f"{run_file}: not a losia-cl run file (no '{RUN_FORMAT_PREFIX}…' format); "
                        f"{out} is not a losia-cl run folder, choose another --out")
    return data


def read_own_file(out: Path, own_file: str, format_prefix: str, kind: str) -> dict[str, Any]:
    """The JSON of ``out/<own_file>``; :class:`DataError` if its format does not start with ``format_prefix``."""
    path = out / own_file
    data = read_json(path)
    if not str(data.get("format", "")).startswith(format_prefix):
        raise DataError(f"{path}: not a losia-cl {kind} file (no '{format_prefix}…' format); "
                        f"{out} is not a losia-cl {kind} folder, choose another --out")
    return data


def _check_usable(out: Path, *, resume: bool, command: str = "run") -> bool:
    """Whether ``out`` exists, after refusing a file, an unwritable folder or parent, a resumption of nothing
    and a symbolic link inside that leads out of the folder (``command`` names the command in messages)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if not out.exists():
        if resume:
            raise ConfigError(f"--resume: {out} does not exist, so there is no {command} to continue; "
                              f"{command} without --resume to start one")
        parent = _nearest_existing(out.parent)
        if not parent.is_dir():
            raise ConfigError(f"--out {out}: cannot be created, {parent} is a file")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: cannot be created, {parent} is not writable")
        return False
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the folder is not writable")
    check_no_outward_links(out)
    return True


def check_no_outward_links(folder: Path) -> None:
    """Refuse ``folder`` if a symbolic link in it (at any depth) leads out of it: losia-cl writes only inside.

    The ``wandb`` folder of ``--wandb`` is W&B's own: losia-cl writes nothing in it, and W&B links each run's
    core log to its cache there, so only the folder itself is checked, not what it holds."""
    for parent, dirs, files in os.walk(folder):  # links are listed, not followed
        for name in dirs + files:
            path = Path(parent) / name
            if path.is_symlink() and not is_within(path, folder):
                raise ConfigError(f"{folder}: {path} is a symbolic link to {os.path.realpath(path)}, outside the "
                                  "folder; losia-cl writes only inside it: remove the link or choose another folder")
        if Path(parent) == Path(folder) and WANDB_DIR in dirs:
            dirs.remove(WANDB_DIR)


def check_out_folder(out: Path, *, resume: bool) -> RunInfo | None:
    """Refuse an ``--out`` that is not ours; the stored ``run.json`` when resuming, else ``None``.

    A new run needs ``out`` absent or empty (a leftover lock file counts as empty) and writable;
    ``resume`` needs a losia-cl run folder.  Neither may hold a symbolic link that leads out of it.
    Nothing is written.
    """
    if not _check_usable(out, resume=resume):
        return None
    if (out / RUN_FILE).exists():
        stored = _read_run_file(out)
        if not resume:
            raise ConfigError(f"{out / RUN_FILE} exists: pass --resume to continue that run, or choose another --out")
        return RunInfo.from_json(stored, out / RUN_FILE)
    _check_unmarked(out, RUN_FILE, "run", resume=resume)
    return None


def check_own_folder(out: Path, *, resume: bool, own_file: str, format_prefix: str, kind: str) -> dict[str, Any] | None:
    """The rules of :func:`check_out_folder` for the folder of command ``kind`` marked by ``own_file`` (``tune``,
    ``tune.json``, whose format starts with ``format_prefix``): the stored file's JSON when resuming, else
    ``None``.  Nothing is written."""
    if not _check_usable(out, resume=resume, command=kind):
        return None
    if (out / own_file).exists():
        stored = read_own_file(out, own_file, format_prefix, kind)
        if not resume:
            raise ConfigError(f"{out / own_file} exists: pass --resume to continue that {kind}, or choose another "
                              "--out")
        return stored
    _check_unmarked(out, own_file, kind, resume=resume, command=kind)
    return None


def _check_unmarked(out: Path, marker: str, kind: str, *, resume: bool, command: str = "run") -> None:
    """``out`` exists without its ``marker`` file: only a new run may use it, and only when it is empty."""
    others = sorted(entry.name for entry in out.iterdir() if entry.name != LOCK_NAME)
    if resume:
        raise ConfigError(f"--resume: {out} is not a losia-cl {kind} folder (it has no {marker}); "
                          f"{command} without --resume to start one" + (" in a new or empty folder" if others else ""))
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise ConfigError(f"--out {out}: the folder is not empty ({shown}) and is not a losia-cl {kind} folder "
                          f"(no {marker}); choose a new or empty folder")


def check_seeds_folder(root: Path, seeds: list[int], *, resume: bool) -> None:
    """Refuse a ``run --seeds`` parent folder (``--out``) that is not ours, or whose ``seeds.json`` disagrees.

    The rules of :func:`check_out_folder`, with ``seeds.json`` in the place of ``run.json``: a new run needs
    the folder absent or empty, or holding a ``seeds.json`` of a run none of whose seeds has started;
    ``resume`` needs a ``seeds.json`` that lists the same seeds.  Nothing is written.
    """
    if not _check_usable(root, resume=resume):
        return
    file = root / SEEDS_FILE
    if not file.exists():
        _check_unmarked(root, SEEDS_FILE, "seeds", resume=resume)
        return
    stored = read_seeds_file(file)["seeds"]
    if resume and stored != list(seeds):
        raise ConfigError(f"--resume: {file} lists the seeds {stored}, this run asks for {list(seeds)}; "
                          "resume with the same --seeds")
    started = seed_run_dirs(root)
    if not resume and started:
        raise ConfigError(f"{file} exists and {started[0]} holds a run: pass --resume to continue it, or choose "
                          "another --out")


def _check_lock_file(path: Path, held: RunLock | None = None) -> None:
    """Refuse a lock path that is not a regular file (a folder, a symbolic link, a FIFO); ``held``: release it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise write_error(path, error) from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode)
                else "not a regular file")
        if held is not None:
            held.release()
        raise ConfigError(f"{path}: the lock file of the run folder is {kind}; remove it")


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

        path = self.out / LOCK_NAME
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(self.out, error) from None
        _check_lock_file(path)
        try:
            self._lock.acquire()
        except Timeout:
            raise ConfigError(f"{self.out} is in use by another losia-cl process (it holds "
                              f"{path}); wait for it to finish") from None
        except OSError as error:
            raise write_error(path, error) from None
        _check_lock_file(path, held=self)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
