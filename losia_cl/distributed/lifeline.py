"""Processes that die with the process that started them, so that a killed run leaves no workers behind.

``torchrun`` starts each worker in a session of its own.  Killing the launcher's process group, or only
the launcher (``kill -9``, an out-of-memory kill, a closed terminal), would leave the workers running:
they would keep training, keep writing into the run folder and keep its lock.  Here:

* :func:`bind` ties the calling process to its parent.  On Linux the kernel sends it SIGKILL when the
  parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread checks the parent's pid every
  :data:`WATCH_SECONDS` and kills the process once the parent is gone.  A parent that died before the
  tie was made is caught too: the process compares its parent with the one it was started by and dies
  at once if they differ.
* :func:`tie_to_this_process` is a ``preexec_fn`` for ``subprocess``: the child (``torchrun``, started by
  ``losia-cl run --nproc``) dies with this process (Linux only).
* :func:`bind_torchrun_worker` is what a losia-cl process started by torchrun's agent calls first: it
  ties itself to the agent and, when the agent was started by ``losia-cl run --nproc``
  (:data:`LAUNCHER_ENV`), checks that the launcher is still the agent's ancestor.

SIGKILL is enough: the run folder's lock is an OS lock that the kernel releases, and every file is
written atomically.  Linux sends the signal when the *thread* that started the child ends; torchrun and
the launcher start their children from their main threads.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Set by ``losia-cl run --nproc`` for torchrun and its workers: the launcher's pid.
LAUNCHER_ENV = "LOSIA_CL_LAUNCHER_PID"
#: Set by torchrun's agent in every worker's environment.
TORCHRUN_ENV = "TORCHELASTIC_RUN_ID"
#: How often the fallback watchdog thread looks at the parent's pid (seconds).
WATCH_SECONDS = 0.5
#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
_PR_SET_PDEATHSIG = 1


def die() -> None:
    """End this process at once with SIGKILL (nothing runs after it, as for a ``kill -9``)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, None elsewhere or when it cannot be found."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return function


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc`` (None where it cannot be read: gone, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is ``pid`` or one of its ancestors; True where ``/proc`` cannot tell."""
    for _ in range(256):  # a bound on the walk, far above any real process tree's depth
        if pid == ancestor:
            return True
        parent = _parent_of(pid)
        if parent is None:
            return not os.path.isdir("/proc/self")  # no /proc: cannot tell; a vanished process: not ours
        if parent == 0:
            return False
        pid = parent
    return False


def bind(parent: int | None = None, *, ancestor: int | None = None, watchdog: bool = False) -> str:
    """Make this process die (SIGKILL) when ``parent`` (default: the current parent) ends.

    Dies at once if ``parent`` is not this process's parent any more (it ended before the tie was
    made), or if ``ancestor`` is given and is not among ``parent``'s ancestors (read from ``/proc``;
    not checked where there is none).  ``watchdog=True`` uses the thread even where ``prctl`` exists.
    Returns the mechanism used, ``"prctl"`` or ``"watchdog"``.
    """
    expected = os.getppid() if parent is None else parent
    prctl = None if watchdog else _prctl()
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.debug("prctl(PR_SET_PDEATHSIG) failed (errno %d); watching the parent instead", _errno())
        prctl = None
    # after the tie: a parent that ended before it was made is no longer our parent
    if os.getppid() != expected:
        die()
    if ancestor is not None and not _descends_from(expected, ancestor):
        die()
    if prctl is not None:
        return "prctl"
    _start_watchdog(expected)
    return "watchdog"


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


#: The parents a watchdog thread of this process already watches (one thread per parent).
_WATCHED: set[int] = set()


def _start_watchdog(parent: int) -> None:
    if parent in _WATCHED:
        return
    _WATCHED.add(parent)

    def watch() -> None:
        stop = threading.Event()  # never set: the thread ends with the process
        while os.getppid() == parent:
            stop.wait(WATCH_SECONDS)
        die()

    threading.Thread(target=watch, name="losia-cl-lifeline", daemon=True).start()


def tie_to_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die (SIGKILL) with this process; None where ``prctl`` is missing.

    The child dies at once if this process ended between the fork and the tie.  Everything the
    function needs is looked up here, in the parent, so the child only calls ``prctl`` and ``getppid``.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    kill, getpid, getppid, sigkill = os.kill, os.getpid, os.getppid, signal.SIGKILL

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)  # it fails only for an invalid signal
        if getppid() != parent:
            kill(getpid(), sigkill)

    return tie


def bind_torchrun_worker() -> str | None:
    """Tie a process started by torchrun's agent to the agent; None (and nothing done) outside torchrun.

    Under ``losia-cl run --nproc`` the launcher must also still be one of the agent's ancestors.
    """
    if TORCHRUN_ENV not in os.environ:
        return None
    launcher = os.environ.get(LAUNCHER_ENV, "")
    return bind(ancestor=int(launcher) if launcher.isdigit() else None)
