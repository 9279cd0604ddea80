"""results.json records each method's updating steps and learning-rate mass per task; the report compares them.

Real runs of LoSiA and LoRA on tiny-llama; the expected masses are written out from the schedules' formulas.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from losia_cl.errors import DataError
from losia_cl.report import build_report
from losia_cl.results import read_results
from losia_cl.trainer import RunConfig, run_experiment

TASKS = ("category", "check")
LR = 1e-2


def cosine(step: int, n: int, lr: float, low: float = 0.1) -> float:
    """No warm-up, cosine from lr at step 0 to low * lr at step n - 1."""
    return lr * (low + (1 - low) * (1 + math.cos(math.pi * step / (n - 1))) / 2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("budget") / "run"
    config = RunConfig(model="tiny-llama", tasks=TASKS, methods=("losia", "lora"), out=str(out),
                       max_train_examples=16, max_test_examples=2, batch_size=2, eval_batch_size=8, max_length=64,
                       lr={"losia": LR, "lora": LR}, progress=False, report=False, retention=False)
    return run_experiment(config).out_dir


@pytest.mark.slow
def test_lora_updates_at_every_step_along_its_cosine(run):
    results = json.loads((run / "lora" / "results.json").read_text())
    assert results["steps"] == {t: 8 for t in TASKS}  # 16 examples, batch 2
    assert results["updating_steps"] == {t: 8 for t in TASKS}
    for task in TASKS:
        assert results["lr_mass"][task] == pytest.approx(sum(cosine(s, 8, LR) for s in range(8)), rel=1e-9)


@pytest.mark.slow
def test_losia_scoring_step_does_not_update_and_a_short_task_keeps_most_of_the_mass(run):
    results = json.loads((run / "losia" / "results.json").read_text())
    schedule = results["method_record"]["category"]["schedule"]
    # 8 steps are too few for 2 layers to take turns: every layer records together (sync) with
    # T = max(1, min(min_period, 8 // 16)) = 1: step 0 only scores, all layers re-localize at boundaries 1 and 2,
    # and a re-warm over T = 1 step is the whole envelope, so steps 1..7 update at LoRA's rates
    assert (schedule["period"], schedule["mode"], schedule["init"]) == (1, "sync", "importance")
    assert results["updating_steps"] == {t: 7 for t in TASKS}
    expected = sum(cosine(s, 8, LR) for s in range(1, 8))
    for task in TASKS:
        assert results["lr_mass"][task] == pytest.approx(expected, rel=1e-9)
    lora = json.loads((run / "lora" / "results.json").read_text())
    assert results["lr_mass"]["check"] > 0.75 * lora["lr_mass"]["check"]  # all but step 0, at the cosine peak


@pytest.mark.slow
def test_the_report_puts_the_masses_side_by_side(run, tmp_path):
    files = build_report([run], out=tmp_path / "report.html")
    page = Path(files.markdown).read_text(encoding="utf-8")
    assert "## Learning-rate budget" in page
    page = page.split("## Learning-rate budget")[1].split("\n## ")[0]
    losia = json.loads((run / "losia" / "results.json").read_text())
    lora = json.loads((run / "lora" / "results.json").read_text())
    ratio = sum(losia["lr_mass"].values()) / sum(lora["lr_mass"].values())
    row = next(line for line in page.splitlines() if line.startswith("| losia |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["16", "14"] and cells[-1] == f"{ratio:.2f}"
    assert next(line for line in page.splitlines() if line.startswith("| lora |")).rstrip(" |").endswith("1.00")


def test_updating_steps_cannot_exceed_steps(tmp_path):
    data = {"format": "losia_cl.results/1", "method": "m", "tasks": ["a"], "scores": [[0.0], [1.0]],
            "metrics": {"average_performance": 1.0, "bwt": None, "fwt": None, "forgetting": None,
                        "learning_accuracy": 1.0},
            "trainable_parameters": 1, "total_parameters": 2, "train_seconds": 1.0, "peak_memory_bytes": 1,
            "steps": {"a": 3}, "updating_steps": {"a": 4}, "lr_mass": {"a": 0.5}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="updating_steps.a' = 4 exceeds steps.a = 3"):
        read_results(path)
    data["updating_steps"]["a"] = 2
    data["lr_mass"]["a"] = -0.1
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="lr_mass.a' must be >= 0"):
        read_results(path)
    data["lr_mass"]["a"] = 0.25
    path.write_text(json.dumps(data))
    record = read_results(path)
    assert (record.updating_steps, record.lr_mass) == ({"a": 2}, {"a": 0.25})
