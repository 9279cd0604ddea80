"""A process tied with losia_cl.distributed.lifeline dies with its parent: killed with the parent's process
group while it sits in a session of its own (as torchrun's workers do), killed with only its parent (as
torchrun dies with ``losia-cl run --nproc``), and at once when the parent was gone before the tie."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")

#: generous: Python starts in well under a second, but the machine may be loaded
READY_SECONDS, GONE_SECONDS = 120, 60


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an orphan's zombie waits for its reaper, running nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] != b"Z"


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], **kwargs)


#: started in a session of its own by PARENT; ties itself and reports how, then waits to be killed
CHILD = """
import pathlib, sys, time
from losia_cl.distributed.lifeline import bind
folder = pathlib.Path(sys.argv[1])
how = bind(watchdog=sys.argv[2] == "watchdog")
(folder / "bound").write_text(how)
time.sleep(600)
(folder / "survived").write_text("600 s")
"""
#: starts CHILD in a new session (as torchrun starts its workers), writes its pid, waits to be killed
PARENT = """
import pathlib, subprocess, sys, time
folder = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", sys.argv[3], *sys.argv[1:3]], start_new_session=True)
(folder / "child.pid").write_text(str(child.pid))
time.sleep(600)
"""


def _child_pid(folder: Path) -> int:
    assert _wait_for(lambda: (folder / "bound").exists(), READY_SECONDS), "the child never tied itself"
    return int((folder / "child.pid").read_text())


@pytest.mark.parametrize("how", ["prctl", "watchdog"])
def test_killing_the_parents_group_kills_the_child_in_its_own_session(tmp_path, how):
    if how == "prctl" and not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux only")
    parent = _python(PARENT, str(tmp_path), how, CHILD, start_new_session=True)
    child = None
    try:
        child = _child_pid(tmp_path)
        assert (tmp_path / "bound").read_text() == how
        assert _running(child)
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=60)
        assert _wait_for(lambda: not _running(child), GONE_SECONDS), f"the child {child} outlived its parent"
        assert not (tmp_path / "survived").exists()
    finally:
        _kill(parent.pid, child)


#: ties a child with tie_to_this_process (the preexec_fn of ``losia-cl run --nproc``), writes its pid, waits
TYING_PARENT = """
import pathlib, subprocess, sys, time
from losia_cl.distributed.lifeline import tie_to_this_process
folder = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                         preexec_fn=tie_to_this_process())
(folder / "child.pid").write_text(str(child.pid))
(folder / "bound").write_text("preexec")
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_a_child_tied_before_exec_dies_when_only_its_parent_is_killed(tmp_path):
    parent = _python(TYING_PARENT, str(tmp_path), start_new_session=True)
    child = None
    try:
        child = _child_pid(tmp_path)
        assert _running(child)
        os.kill(parent.pid, signal.SIGKILL)  # the parent alone, as an out-of-memory kill does
        parent.wait(timeout=60)
        assert _wait_for(lambda: not _running(child), GONE_SECONDS), f"the child {child} outlived its parent"
    finally:
        _kill(parent.pid, child)


#: starts a child that ties itself only once this parent has gone, then exits at once
LATE_PARENT = """
import pathlib, subprocess, sys, os
folder = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", sys.argv[3], sys.argv[1], str(os.getpid()), sys.argv[2]],
                         start_new_session=True)
(folder / "child.pid").write_text(str(child.pid))
os._exit(0)
"""
LATE_CHILD = """
import os, pathlib, sys, time
from losia_cl.distributed.lifeline import bind
folder, parent = pathlib.Path(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 120
while os.getppid() == parent and time.monotonic() < deadline:
    time.sleep(0.05)
(folder / "orphaned").write_text(str(os.getppid() != parent))
bind(parent, watchdog=sys.argv[3] == "watchdog")
(folder / "survived").write_text("bind returned")
"""


@pytest.mark.parametrize("how", ["prctl", "watchdog"])
def test_a_parent_gone_before_the_tie_is_noticed(tmp_path, how):
    parent = _python(LATE_PARENT, str(tmp_path), how, LATE_CHILD)
    assert parent.wait(timeout=120) == 0
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert _wait_for(lambda: not _running(child), READY_SECONDS + GONE_SECONDS)
        assert (tmp_path / "orphaned").read_text() == "True"  # it did try to tie itself to a gone parent
        assert not (tmp_path / "survived").exists()
    finally:
        _kill(None, child)


#: a torchrun worker: ties itself to its parent and checks that the launcher is one of the parent's ancestors
WORKER = """
import sys
from losia_cl.distributed.lifeline import bind_torchrun_worker
print(bind_torchrun_worker(), flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
@pytest.mark.parametrize("launcher, status, printed", [
    ("ancestor", 0, "prctl\n"),                # the test process started the worker's parent: the chain holds
    ("stranger", 128 + signal.SIGKILL, ""),      # no ancestor: the launcher is gone, so the worker dies at once
    ("none", 0, "prctl\n"),                    # torchrun started by hand: only the parent is checked
])
def test_a_torchrun_worker_checks_that_its_launcher_is_an_ancestor(launcher, status, printed):
    stranger = _python("import time; time.sleep(600)")
    try:
        env = {**os.environ, "TORCHELASTIC_RUN_ID": "test"}
        env.pop("LOSIA_CL_LAUNCHER_PID", None)
        if launcher != "none":
            env["LOSIA_CL_LAUNCHER_PID"] = str(os.getpid() if launcher == "ancestor" else stranger.pid)
        # the worker's parent is a shell (it stays, "exit $?" keeps it from exec'ing): the test is its grandparent
        worker = subprocess.run(["/bin/sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, WORKER],
                                capture_output=True, text=True, env=env, timeout=120)
    finally:
        stranger.kill()
        stranger.wait()
    assert (worker.returncode, worker.stdout) == (status, printed), worker.stderr


def test_outside_torchrun_a_worker_ties_nothing(monkeypatch):
    from losia_cl.distributed.lifeline import bind_torchrun_worker

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert bind_torchrun_worker() is None


def _kill(parent: int | None, child: int | None) -> None:
    """Clean up after a failed test: the parent's group and a child that outlived it."""
    if parent is not None:
        try:
            os.killpg(parent, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if child is not None and _running(child):
        os.kill(child, signal.SIGKILL)
