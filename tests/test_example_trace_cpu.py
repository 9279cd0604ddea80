"""examples/trace_cpu.sh runs the whole protocol (tune -> run --lr-from -> report) with the trace-cpu preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "trace_cpu.sh"
TASKS = ("C-STANCE", "FOMC", "NumGLUE-cm", "NumGLUE-ds")


def write_trace(root: Path) -> None:
    for task in TASKS:
        for split, n in (("train", 8), ("eval", 3), ("test", 3)):
            records = [{"prompt": f"{task} {split} {i}\nAnswer:", "answer": "ABC"[i % 3]} for i in range(n)]
            (root / task).mkdir(parents=True, exist_ok=True)
            (root / task / f"{split}.json").write_text(json.dumps(records))


@pytest.mark.slow
def test_script_tunes_runs_three_seeds_and_reports(tmp_path):
    write_trace(tmp_path / "TRACE")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    small = ["--model", "tiny-llama", "--methods", "full", "--max-steps", "1", "--max-length", "64", "--no-progress"]
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "TRACE"), str(tmp_path / "out"), *small],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    tune = json.loads((tmp_path / "out" / "tune" / "tune.json").read_text())
    assert tune["tasks"] == ["FOMC", "NumGLUE-cm"] and tune["splits"] == {"FOMC": "eval", "NumGLUE-cm": "eval"}
    assert len(tune["grid"]["full"]) == 5
    for seed in (0, 1, 2):
        run = json.loads((tmp_path / "out" / "run" / f"seed{seed}" / "run.json").read_text())
        assert run["tasks"] == ["FOMC", "NumGLUE-cm", "NumGLUE-ds"] and run["seed"] == seed  # the preset's, not C-STANCE
        assert run["learning_rates"]["full"]["source"] == "tune.json"
        assert run["config"]["max_train_examples"] == 128 and run["config"]["max_steps"] == 1
    assert (tmp_path / "out" / "run" / "report" / "report.html").is_file()
    assert done.stdout.strip().endswith(str(tmp_path / "out" / "run" / "report" / "report.html"))
