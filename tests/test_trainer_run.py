"""The main job end to end on tiny-llama: every method, the results contract, resume after kill -9, CLI errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from losia_cl.errors import ConfigError
from losia_cl.methods import SubnetMethod, create_method, method_names
from losia_cl.metrics import cl_metrics
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.timing import TIME_PARTS

TASKS = ("category", "position", "check")
SMALL = dict(model="tiny-llama", tasks=TASKS, max_train_examples=16, max_test_examples=6, batch_size=4,
             eval_batch_size=8, max_length=64, progress=False, report=False, checkpoint_every=2)


def _config(tmp_path: Path, methods, **overrides) -> RunConfig:
    return RunConfig(methods=methods, out=str(tmp_path / "run"), **{**SMALL, **overrides})


@pytest.mark.slow
def test_every_method_end_to_end(tmp_path):
    methods = tuple(method_names())
    outcome = run_experiment(_config(tmp_path, methods, lr={m: 1e-2 for m in methods}, measure_every_task=True,
                                      stability=True))
    run = json.loads((outcome.out_dir / "run.json").read_text())
    assert run["tasks"] == list(TASKS) and run["methods"] == list(methods) and run["finished_at"]
    assert run["versions"]["torch"] and run["config"]["seed"] == 0
    assert run["timings"]["base_evaluation"] > 0 and run["timings"]["stability_reference"] > 0
    for method in methods:
        folder = outcome.out_dir / method
        results = json.loads((folder / "results.json").read_text())
        scores = results["scores"]
        assert results["method"] == method and results["tasks"] == list(TASKS)
        assert len(scores) == 4 and all(len(row) == 3 for row in scores)
        assert all(0.0 <= v <= 1.0 for row in scores for v in row)
        assert results["metrics"] == json.loads(json.dumps(cl_metrics(scores).to_dict()))
        assert results["trainable_parameters"] > 0 and results["train_seconds"] > 0 and results["peak_memory_bytes"] > 0
        assert results["steps"] == {t: 4 for t in TASKS}  # 16 examples / batch 4, one epoch
        assert all(len(results["losses"][t]) == 4 for t in TASKS)
        timings = results["timings"]
        assert set(timings) == set(TIME_PARTS) and all(timings[p] > 0 for p in ("train", "evaluation", "checkpoint"))
        assert results["train_seconds"] == timings["train"]
        assert results["eval_seconds"] == pytest.approx(timings["evaluation"] + timings["probe"])
        stages = results["stability"]["stages"]
        assert len(stages) == 3
        # every task moved the weights: the optimizer stepped (the effective weights differ from the base
        # and from the previous task's)
        changes = [stage["mean"]["delta_rel_norm"] for stage in stages]
        assert all(change > 1e-4 for change in changes), (method, changes)
        assert all(b != a for a, b in zip(changes, changes[1:])), (method, changes)
        assert all(stage["mean"]["spectral_drift_prev"] > 0 for stage in stages), method
        assert set(results["method_record"]) == set(TASKS)
        is_subnet = isinstance(create_method(method), SubnetMethod)
        assert (results["subnet_overlap"] is not None) == is_subnet
        with open(folder / "scores.csv") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["after", *TASKS] and [r[0] for r in rows[1:]] == ["base", *TASKS]
        assert [float(v) for v in rows[2][1:]] == pytest.approx(scores[1], abs=1e-6)
        for stage in range(1, 4):
            for task in TASKS:
                lines = (folder / "predictions" / f"stage{stage}-{task}.jsonl").read_text().splitlines()
                records = [json.loads(line) for line in lines]
                assert len(records) == 6
                assert sum(r["score"] for r in records) / 6 == pytest.approx(scores[stage][TASKS.index(task)])
        assert not (folder / "checkpoint.pt").exists()  # finished methods keep no checkpoint
    by_method = {m: json.loads((outcome.out_dir / m / "results.json").read_text()) for m in methods}
    assert all(r["scores"][0] == by_method["full"]["scores"][0] for r in by_method.values())  # one base row
    assert by_method["losia"]["trainable_parameters"] < by_method["lora"]["trainable_parameters"] * 2
    assert by_method["full"]["trainable_parameters"] > 10 * by_method["losia"]["trainable_parameters"]
    overlap = by_method["losia"]["subnet_overlap"]
    assert overlap["tasks"] == list(TASKS)


def _cli(*args: str, env_extra: dict | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "losia_cl.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def _run_args(out: Path, *extra: str) -> list[str]:
    return ["run", "--model", "tiny-llama", "--tasks", ",".join(TASKS), "--methods", "losia,lora",
            "--max-train-examples", "24", "--max-test-examples", "4", "--batch-size", "4", "--max-length", "64",
            "--checkpoint-every", "1", "--stability", "--no-progress", "--no-report", "--lr", "1e-2", "--out", str(out),
            *extra]


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_results(tmp_path):
    reference = _cli(*_run_args(tmp_path / "ref"))
    killed = _cli(*_run_args(tmp_path / "crash"))
    # wait until the first method is inside its second task, then kill -9 mid-task
    checkpoint = tmp_path / "crash" / "losia" / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline:
        losses = None
        if checkpoint.exists():
            try:
                import torch

                losses = torch.load(checkpoint, weights_only=True)["task_index"]
            except Exception:  # being replaced right now
                losses = None
        if losses == 1:
            break
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "crash" / "losia" / "results.json").exists()
    resumed = _cli(*_run_args(tmp_path / "crash", "--resume"))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    ref_out, ref_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_err
    for method in ("losia", "lora"):
        a = json.loads((tmp_path / "ref" / method / "results.json").read_text())
        b = json.loads((tmp_path / "crash" / method / "results.json").read_text())
        for key in ("scores", "metrics", "losses", "stability", "subnet_overlap", "steps", "updating_steps", "lr_mass",
                    "trainable_parameters"):
            assert a[key] == b[key], (method, key)
        assert a["saved_models"] == b["saved_models"] == {"final": "model", "tasks": {}}
        from safetensors.torch import load_file

        name = "model.safetensors" if method == "losia" else "adapter_model.safetensors"
        saved_a, saved_b = (load_file(root / method / "model" / name) for root in (tmp_path / "ref", tmp_path / "crash"))
        assert saved_a.keys() == saved_b.keys() and all(saved_a[k].equal(saved_b[k]) for k in saved_a), method
    assert "AP" in out and "losia" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--methods", "losia,sgd"], "unknown method 'sgd'; known methods: " + ", ".join(method_names())),
        (["run", "--methods", "lora", "--method-option", "lora.rnak=4"],
         "method lora: unknown option 'rnak'; valid options: lr, rank,"),
        (["run", "--methods", "lora", "--method-option", "lora.rank=0"], "lora.rank = 0 is invalid"),
        (["run", "--methods", "lora", "--method-option", "full.lr=1e-3"], "'full' is not one of the methods run"),
        (["run", "--stream", "nope"], "unknown stream 'nope'"),
        (["run", "--epochs", "0", "--model", "tiny-llama"], "epochs = 0 is invalid"),
        (["run", "--batch-size", "-3"], "batch_size = -3 is invalid"),
        (["run", "--stream", "trace", "--data-dir", "/nonexistent/trace"], "/nonexistent/trace"),
        (["run", "--lr", "inf"], "lr: losia=inf is invalid: it must be a number > 0 and <= 1"),
        (["run", "--seed", "1" * 30], "seed = 111111111111111111111111111111 is invalid"),
        (["run", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    process = _cli(*args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("losia-cl: error:") and message in lines[0], err
    assert not (tmp_path / "o").exists()  # nothing written before the input is validated


def test_trace_without_data_explains_where_it_goes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LOSIA_CL_DATA"}
    process = subprocess.run([sys.executable, "-m", "losia_cl.cli", "run", "--stream", "trace", "--out", str(tmp_path / "o")],
                             capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert process.returncode == 2
    assert "--data-dir" in process.stderr and "LOSIA_CL_DATA" in process.stderr
    assert "loaded" not in process.stderr  # failed before any model was loaded


def test_resume_refuses_other_settings(tmp_path):
    config = _config(tmp_path, ("full",), max_train_examples=4, max_test_examples=2, lr={"full": 1e-3})
    run_experiment(config)
    again = _config(tmp_path, ("full",), max_train_examples=8, max_test_examples=2, lr={"full": 1e-3}, resume=True)
    with pytest.raises(ConfigError, match=r"max_train_examples: 4 in the run, 8 now"):
        run_experiment(again)
    same = _config(tmp_path, ("full",), max_train_examples=4, max_test_examples=2, lr={"full": 1e-3}, resume=True)
    outcome = run_experiment(same)  # finished methods are kept, nothing retrained
    assert outcome.results["full"]["steps"] == {t: 1 for t in TASKS}
