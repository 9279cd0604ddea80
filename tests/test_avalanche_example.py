"""examples/avalanche_losia.py runs offline on the CPU and prints the score matrix."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("avalanche")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "avalanche_losia.py"


@pytest.mark.slow
def test_example_runs_and_prints_the_score_matrix(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],  # the defaults: a smoke run that learns something
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "score matrix (LoSiA + replay, test split):" in out
    rows = re.findall(r"^(base|check|position)\s+((?:\s*\d\.\d{3}){2})$", out, flags=re.M)
    assert [label for label, _ in rows] == ["base", "check", "position"]
    scores = [[float(v) for v in values.split()] for _, values in rows]
    assert scores[1][0] > 0, scores  # check is learned
    assert "average performance" in out
    # the text logger printed the plugin metrics
    for name in ("TaskScore/eval_phase/test_stream", "StreamScoreBWT/eval_phase/test_stream",
                 "SubnetOverlap/train_phase/train_stream", "StabilityDeltaNorm/train_phase/train_stream"):
        assert name in out
    assert cpu_seconds < 120  # CPU time, not wall time: the test machines are shared
