"""Data-parallel runs on CPU (gloo): two processes give the one-process results, only rank 0 writes,
a killed two-process run leaves no process behind and resumes, and ``losia-cl run --nproc 2`` is the
torchrun form."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test starts several Python processes

TASKS = ("category", "position")
METHODS = ("losia", "lora")
#: 14 examples in micro-batches of 4 on 2 ranks: each step's micro-batch is split (2 + 2, the last 1 + 1)
RUN = ["run", "--model", "tiny-llama", "--tasks", ",".join(TASKS), "--methods", ",".join(METHODS),
       "--max-train-examples", "14", "--max-test-examples", "6", "--batch-size", "4", "--max-length", "64",
       "--eval-batch-size", "2", "--checkpoint-every", "1", "--lr", "1e-2", "--no-progress", "--no-report"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _start(command: list[str], out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*command, *RUN, "--out", str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**ENV, **(env or {})}, start_new_session=True)


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    return out, err


def _results(out: Path, method: str) -> dict:
    return json.loads((out / method / "results.json").read_text())


def _metric_rows(printed: str) -> list[list[str]]:
    """The comparison table's rows (the first table printed) without the timing and memory columns (they differ
    run to run)."""
    lines = printed.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| ")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [line.split("|")[1:-1] for line in lines[start:end] if line.startswith("| ")]
    return [[cell.strip() for cell in row[:7]] for row in rows]


def _same_results(a: Path, b: Path) -> None:
    for method in METHODS:
        ra, rb = _results(a, method), _results(b, method)
        assert ra["scores"] == rb["scores"], method
        assert ra["subnet_overlap"] == rb["subnet_overlap"], method  # the same subnets, task by task
        assert ra["steps"] == rb["steps"] == {t: 4 for t in TASKS}
        for task in TASKS:
            assert rb["losses"][task] == pytest.approx(ra["losses"][task], rel=1e-5, abs=0), (method, task)
        for stage in range(1, len(TASKS) + 1):
            for task in TASKS:
                name = f"predictions/stage{stage}-{task}.jsonl"
                assert (a / method / name).read_text() == (b / method / name).read_text(), (method, name)


def test_two_processes_give_the_one_process_results(tmp_path):
    one = _start([sys.executable, "-m", "losia_cl"], tmp_path / "one")
    two = _start([*TORCHRUN, "-m", "losia_cl"], tmp_path / "two", env={"LOSIA_CL_DEBUG_DDP": "1"})
    out_one, _ = _finish(one)
    out_two, err_two = _finish(two)
    _same_results(tmp_path / "one", tmp_path / "two")
    assert _metric_rows(out_two) == _metric_rows(out_one) and len(_metric_rows(out_one)) == 3
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "one" / "run.json").read_text())["world_size"] == 1
    # LOSIA_CL_DEBUG_DDP compared the subnets of both ranks after every step, and the weights after every task
    checked = re.findall(r"debug: weights identical on 2 ranks after (\w+)(?:; LoSiA subnets identical after "
                         r"each of (\d+) steps)?", err_two)
    assert checked == [(t, str(4 * (i + 1))) for i, t in enumerate(TASKS)] + [(t, "") for t in TASKS], err_two[-2000:]
    assert out_two.count("\n| method |") == 1  # one comparison table: only rank 0 prints


def _rank_run(ctx, base: str) -> list[str]:
    """Run the experiment with a run folder of this rank's own: rank 1 must leave its folder untouched."""
    from losia_cl.trainer import RunConfig, run_experiment

    out = Path(base) / f"rank{ctx.rank}"
    config = RunConfig(model="tiny-llama", tasks=("category", "position"), methods=("losia-pro",),
                       max_train_examples=8, max_test_examples=4, batch_size=4, max_length=64, eval_batch_size=2,
                       checkpoint_every=1, progress=False, tensorboard=True, out=str(out))
    outcome = run_experiment(config)
    return outcome.results["losia-pro"]["scores"]


def test_only_rank_zero_writes(tmp_path):
    from losia_cl.distributed import spawn

    scores = spawn(_rank_run, 2, str(tmp_path))
    assert scores[0] == scores[1]  # both ranks know the results
    written = sorted(str(p.relative_to(tmp_path / "rank0")) for p in (tmp_path / "rank0").rglob("*") if p.is_file())
    assert "run.json" in written and "losia-pro/results.json" in written and "losia-pro/scores.csv" in written
    assert "losia-pro/predictions/stage2-position.jsonl" in written
    assert [name.startswith("tensorboard/losia-pro/events.out.tfevents.") for name in written].count(True) == 1
    assert "losia-pro/model/model.safetensors" in written  # the saved model, by rank 0 alone
    assert not (tmp_path / "rank1").exists()


def _processes_of(run: Path) -> set[int]:
    """The running processes whose command line names ``run`` (launcher, torchrun, workers); zombies excluded."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_bytes()
        except OSError:  # ended while we looked
            continue
        if str(run).encode() in argv and stat[stat.rindex(b")") + 2:].split()[0] != b"Z":
            found.add(int(entry.name))
    return found


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="processes are found in /proc; prctl is Linux only")
def test_killed_nproc_run_leaves_no_process_and_resumes_to_the_torchrun_results(tmp_path):
    reference = _start([*TORCHRUN, "-m", "losia_cl"], tmp_path / "ref")
    crash = tmp_path / "crash"
    killed = _start([sys.executable, "-m", "losia_cl"], crash, "--nproc", "2")
    survivors: set[int] = set()
    try:
        # kill -9 the launcher alone (as an out-of-memory kill does) once the first method has finished its
        # first task: torchrun dies with it, and each worker with torchrun
        marker = crash / "losia" / "predictions" / f"stage1-{TASKS[-1]}.jsonl"
        deadline = time.time() + 600
        while not marker.exists() and killed.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        started = _processes_of(crash)
        assert len(started) == 4 and killed.pid in started  # the launcher, torchrun and two workers
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert killed.returncode == -signal.SIGKILL
        deadline = time.time() + 120
        while (survivors := _processes_of(crash)) and time.time() < deadline:
            time.sleep(0.1)
        assert not survivors, f"processes of the killed run still running: {sorted(survivors)}"
    finally:
        for pid in survivors:  # a failed run of this test leaves nothing behind
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed.pid, signal.SIGKILL)
    files = _files(crash)
    assert not (crash / "losia" / "results.json").exists()
    assert json.loads((crash / "run.json").read_text())["world_size"] == 2
    # another number of processes is refused before anything starts
    other = subprocess.run([sys.executable, "-m", "losia_cl", *RUN, "--out", str(crash), "--resume", "--nproc", "3"],
                           capture_output=True, text=True, env=ENV, timeout=300)
    lines = [line for line in other.stderr.splitlines() if line.strip()]
    assert other.returncode == 2 and len(lines) == 1, other.stderr
    assert lines[0].startswith("losia-cl: error: --resume:") and "2 process(es), this job has 3" in lines[0]
    # meanwhile (seconds: a step of the killed run takes less) nothing was written into the run folder
    assert _files(crash) == files
    resumed = _start([sys.executable, "-m", "losia_cl"], crash, "--resume", "--nproc", "2")
    out_resumed, _ = _finish(resumed)
    out_ref, _ = _finish(reference)
    _same_results(tmp_path / "ref", crash)
    assert _metric_rows(out_resumed) == _metric_rows(out_ref) and len(_metric_rows(out_ref)) == 3
