"""Data-parallel runs of the regularizing methods and of replay: two processes give the one-process results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts three Python processes

TASKS = ("category", "position", "successor")
METHODS = ("ewc+replay", "olora")
#: 14 examples in micro-batches of 4: each rank trains its half of every micro-batch, replayed examples included
RUN = ["run", "--model", "tiny-llama", "--tasks", ",".join(TASKS), "--methods", ",".join(METHODS),
       "--max-train-examples", "14", "--max-test-examples", "4", "--batch-size", "4", "--max-length", "64",
       "--eval-batch-size", "2", "--lr", "1e-2", "--no-progress", "--no-report", "--no-retention",
       "--replay", "0.3", "--replay-buffer", "3", "--method-option", "ewc+replay.fisher_examples=5",
       "--method-option", "ewc+replay.lam=1000", "--method-option", "olora.lambda_l2=0.01"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "losia_cl", *RUN, "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)


def test_two_processes_give_the_one_process_results_with_penalties_and_replay(tmp_path):
    one = _run(tmp_path / "one")
    two = _run(tmp_path / "two", "--nproc", "2")
    for process in (one, two):
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    for method in METHODS:
        a, b = (json.loads((tmp_path / run / method / "results.json").read_text()) for run in ("one", "two"))
        assert a["scores"] == b["scores"], method
        for task in TASKS:
            assert b["losses"][task] == pytest.approx(a["losses"][task], rel=1e-5, abs=1e-6), (method, task)
        # the penalty counted once in the summed gradient: the same weights, so the same penalty at each task's end
        key = "penalty_at_task_end" if method.startswith("ewc") else "orthogonality_at_task_end"
        for task in TASKS[1:]:
            assert b["method_record"][task][key] == pytest.approx(a["method_record"][task][key], rel=1e-4), method
        assert b["method_record"]["successor"].get("replay") == a["method_record"]["successor"].get("replay")
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
