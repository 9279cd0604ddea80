"""Checkpoints are plain data: RNG round trip, refusal of code, old formats and corrupt files, mid-task resume."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.checkpoint import CHECKPOINT_NAME, Checkpoint, CheckpointError, rng_state, set_rng_state

TASKS = ("category", "position")
TINY = dict(model="tiny-llama", tasks=TASKS, max_train_examples=8, max_test_examples=3, batch_size=2,
            eval_batch_size=4, max_length=48, progress=False, report=False, checkpoint_every=1)


def _draws() -> list[float]:
    return [torch.rand(1).item(), float(np.random.rand()), random.random(), random.gauss(0, 1)]


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3), np.random.seed(4), random.seed(5)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    Checkpoint(task_index=1, step=2, model={}, optimizer={}, scheduler=None, rng=rng_state(),
               progress={"scores": [[0.5]]}).save(tmp_path)
    expected = _draws()
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    loaded = Checkpoint.load(tmp_path)
    set_rng_state(loaded.rng)
    assert _draws() == expected
    assert (loaded.task_index, loaded.step, loaded.progress) == (1, 2, {"scores": [[0.5]]})
    raw = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)  # plain data: no Python object needed
    assert raw["format"] == "losia_cl.checkpoint/2"


def test_saving_an_object_that_is_not_plain_data_fails_at_save_time(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint entry checkpoint.optimizer.hook is a function"):
        Checkpoint(task_index=0, step=1, model={}, optimizer={"hook": _draws}, scheduler=None, rng={},
                   progress={}).save(tmp_path)
    assert not list(tmp_path.iterdir())


class _Marker:
    """Unpickling this object would create the marker file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _malicious_torch(path: Path, marker: Path) -> None:
    torch.save({"format": "losia_cl.checkpoint/2", "task_index": _Marker(marker)}, path)


def _malicious_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"task_index": _Marker(marker)}, protocol=2))


def _old_format(path: Path, marker: Path) -> None:  # what losia-cl wrote before: numpy arrays in the RNG state
    torch.save({"task_index": 0, "step": 1, "model": {}, "rng": {"numpy": np.random.get_state()}}, path)


def _truncated(path: Path, marker: Path) -> None:
    Checkpoint(task_index=0, step=1, model={"w": torch.ones(1000)}, optimizer={}, scheduler=None, rng=rng_state(),
               progress={}).save(path.parent)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random(path: Path, marker: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _empty(path: Path, marker: Path) -> None:
    path.write_bytes(b"")


def _foreign(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_malicious_torch, "holds Python objects (posix.mkdir), not only tensors and plain data"),
        (_malicious_pickle, "holds Python objects (posix.mkdir), not only tensors and plain data"),
        (_old_format, "holds Python objects (numpy."),
        (_truncated, "unreadable"),
        (_random, "unreadable"),
        (_empty, "unreadable"),
        (_foreign, "its format is None, not 'losia_cl.checkpoint/2'"),
    ],
)
def test_unusable_checkpoints_are_refused_and_never_run_code(tmp_path, make, reason):
    marker = tmp_path / "marker"
    path = tmp_path / CHECKPOINT_NAME
    make(path, marker)
    with pytest.raises(CheckpointError) as info:
        Checkpoint.load(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to resume") and reason in message and "\n" not in message
    assert "delete it to restart this method" in message
    assert not marker.exists()


def _config(out: Path, **overrides) -> RunConfig:
    return RunConfig(out=str(out), **{**TINY, "methods": ("losia",), "lr": {"losia": 1e-2}, "stability": True, **overrides})


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_resume_mid_task_gives_the_uninterrupted_results(tmp_path, monkeypatch):
    reference = run_experiment(_config(tmp_path / "ref")).results["losia"]
    save = Checkpoint.save
    calls = []

    def save_then_stop(self, folder, sync=None, root=None):  # written at once (not in the background): a fixed crash
        calls.append((self.task_index, self.step))
        if len(calls) == 6:  # task 2, step 2: stop before it reaches the disk (the work since step 1 is lost)
            raise _Interrupted
        return save(self, folder, root=root)

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    with pytest.raises(_Interrupted):
        run_experiment(_config(tmp_path / "crash"))
    monkeypatch.setattr(Checkpoint, "save", save)
    assert calls[-1] == (1, 2)
    saved = Checkpoint.load(tmp_path / "crash" / "losia")
    assert (saved.task_index, saved.step) == (1, 1) and len(saved.progress["scores"]) == 2
    resumed = run_experiment(_config(tmp_path / "crash", resume=True)).results["losia"]
    for key in ("scores", "metrics", "losses", "stability", "subnet_overlap", "steps", "trainable_parameters"):
        assert resumed[key] == reference[key], key
    assert reference["steps"] == {"category": 4, "position": 4}
    assert not (tmp_path / "crash" / "losia" / CHECKPOINT_NAME).exists()


@pytest.mark.slow
def test_resume_from_a_malicious_checkpoint_exits_2_without_running_it(tmp_path):
    out = tmp_path / "run"
    run_experiment(_config(out, methods=("full",), lr={"full": 1e-3}, tasks=("category",), max_train_examples=4))
    (out / "full" / "results.json").unlink()  # as if the method had been killed mid-task
    marker = tmp_path / "marker"
    _malicious_torch(out / "full" / CHECKPOINT_NAME, marker)
    args = ["run", "--model", "tiny-llama", "--methods", "full", "--tasks", "category", "--max-train-examples", "4",
            "--max-test-examples", "3", "--batch-size", "2", "--eval-batch-size", "4", "--max-length", "48",
            "--checkpoint-every", "1", "--stability", "--lr", "full=1e-3", "--no-progress", "--no-report", "--out", str(out),
            "--resume"]
    process = subprocess.run([sys.executable, "-m", "losia_cl.cli", *args], capture_output=True, text=True,
                             timeout=300)
    errors = [line for line in process.stderr.splitlines() if line.startswith("losia-cl: error:")]
    assert process.returncode == 2, process.stderr
    assert len(errors) == 1 and "refused to resume" in errors[0] and "Traceback" not in process.stderr
    assert not marker.exists()
    assert json.loads((out / "run.json").read_text())["format"] == "losia_cl.run/1"
