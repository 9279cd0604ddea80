"""In a pipe, a run's stderr is its log: no progress bar of losia-cl or of the libraries it drives, no warnings.

The run loads tiny-llama's weights from a saved directory, so the model goes through transformers'
``from_pretrained``, whose "Loading weights" bar is what leaked into redirected logs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a default-sized run (4 tasks, 3 methods) in a subprocess

#: stderr lines a quiet run may hold besides INFO lines (none today).
ALLOWED: tuple[re.Pattern[str], ...] = ()
#: what a progress bar leaves in a stream: carriage returns, rates, bar characters, step counters
BAR = re.compile(r"\r|it/s|s/it|step/s|\|#|█|\d+/\d+ \[")


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    from losia_cl.models.tiny import tiny_llama

    folder = tmp_path_factory.mktemp("tiny-saved")
    model, tokenizer = tiny_llama(seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_default_sized_run_in_a_pipe_logs_no_bars_and_no_warnings(tmp_path, saved_tiny):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                        "TRANSFORMERS_NO_ADVISORY_WARNINGS", "TRANSFORMERS_VERBOSITY", "PYTHONWARNINGS")}
    result = subprocess.run(
        [sys.executable, "-m", "losia_cl", "run", "--model", str(saved_tiny), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=1800, env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    err = result.stderr
    assert not BAR.search(err), err[:3000]
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(line.startswith("INFO losia_cl.") for line in lines)  # the log itself is there
    unexpected = [line for line in lines
                  if not line.startswith("INFO losia_cl.") and not any(p.search(line) for p in ALLOWED)]
    assert unexpected == []
    assert "| losia |" in result.stdout and "| full |" in result.stdout  # the comparison went to stdout
