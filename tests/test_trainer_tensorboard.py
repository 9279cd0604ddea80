"""``losia-cl run --tensorboard``: the event files hold the run's losses, applied learning rates, scores and
subnet overlap on one step axis across tasks, a resumed method shows every step once, and a missing
tensorboard package is one line naming the extra."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from losia_cl.errors import ConfigError
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.checkpoint import Checkpoint

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard package is not installed (pip install 'losia-cl[tensorboard]')",
)

TASKS = ("category", "position")
STEPS = 8  # 32 examples in batches of 4, one epoch
SMALL = dict(model="tiny-llama", tasks=TASKS, max_train_examples=32, max_test_examples=4, batch_size=4,
             eval_batch_size=8, max_length=64, progress=False, report=False, retention=False, checkpoint_every=1,
             tensorboard=True)


def _config(out: Path, methods=("losia", "full"), **overrides) -> RunConfig:
    return RunConfig(methods=methods, out=str(out), lr={m: 1e-2 for m in methods},
                     method_options={"losia": {"period": 2}} if "losia" in methods else None,
                     **{**SMALL, **overrides})


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the event files in ``folder``: (step, value), as TensorBoard shows them."""
    accumulator = event_accumulator.EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def _results(out: Path, method: str) -> dict:
    return json.loads((out / method / "results.json").read_text())


@pytest.mark.slow
def test_events_hold_losses_applied_lr_scores_and_overlap(tmp_path):
    out = tmp_path / "run"
    run_experiment(_config(out))
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["full", "losia"]
    events = {m: _events(out / "tensorboard" / m) for m in ("losia", "full")}
    assert set(events["full"]) == {"train/loss", "train/lr", *(f"score/{t}" for t in TASKS)}
    assert set(events["losia"]) == set(events["full"]) | {
        "subnet/task_coverage", "subnet/cumulative_coverage", "subnet/jaccard_prev", "subnet/jaccard_ratio_prev"}
    for method, tags in events.items():
        results = _results(out, method)
        assert results["steps"] == {t: STEPS for t in TASKS}
        # one step axis across tasks: task 2's steps follow task 1's
        assert [s for s, _ in tags["train/loss"]] == list(range(len(TASKS) * STEPS))
        assert [s for s, _ in tags["train/lr"]] == list(range(len(TASKS) * STEPS))
        losses = [loss for task in TASKS for loss in results["losses"][task]]
        assert [v for _, v in tags["train/loss"]] == pytest.approx(losses, rel=1e-6)  # stored as float32
        # the base model at step 0, then every task's score after each task
        for column, task in enumerate(TASKS):
            assert [s for s, _ in tags[f"score/{task}"]] == [0, STEPS, 2 * STEPS]
            assert [v for _, v in tags[f"score/{task}"]] == pytest.approx([row[column] for row in results["scores"]])
        for index, task in enumerate(TASKS):
            lrs = [v for s, v in tags["train/lr"] if index * STEPS <= s < (index + 1) * STEPS]
            assert sum(lrs) == pytest.approx(results["lr_mass"][task], rel=1e-6)
    overlap = _results(out, "losia")["subnet_overlap"]
    assert events["losia"]["subnet/cumulative_coverage"] == [
        (STEPS * (i + 1), pytest.approx(c, rel=1e-6)) for i, c in enumerate(overlap["cumulative_coverage"])]
    assert events["losia"]["subnet/jaccard_prev"] == [(2 * STEPS, pytest.approx(overlap["coverage_jaccard"][0][1]))]
    # full fine-tuning runs at the schedule's envelope; LoSiA at the same envelope, re-warmed after every
    # re-localization (and at 0 while its first subnets are scored): below the envelope there, never above it
    envelope = dict(events["full"]["train/lr"])
    assert envelope[0] == pytest.approx(1e-2) and envelope[STEPS] == pytest.approx(1e-2)
    losia = dict(events["losia"]["train/lr"])
    assert all(losia[s] <= envelope[s] * (1 + 1e-6) for s in losia)
    re_warmed = [s for s in losia if 0 < losia[s] < envelope[s] * (1 - 1e-3)]
    assert len(re_warmed) >= 2 and any(s >= STEPS for s in re_warmed), losia
    assert max(losia.values()) < 1e-2


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_a_resumed_method_shows_every_step_once(tmp_path, monkeypatch):
    out = tmp_path / "run"
    save = Checkpoint.save
    calls = []

    def save_then_stop(self, folder, sync=None, root=None):
        calls.append((self.task_index, self.step))
        if len(calls) == STEPS + 3:  # task 2, step 3: stop before it reaches the disk (steps 2 and 3 are redone)
            raise _Interrupted
        return save(self, folder, root=root)

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    with pytest.raises(_Interrupted):
        run_experiment(_config(out, methods=("losia",)))
    monkeypatch.setattr(Checkpoint, "save", save)
    interrupted = _events(out / "tensorboard" / "losia")
    assert [s for s, _ in interrupted["train/loss"]] == list(range(STEPS + 3))  # flushed at every checkpoint
    run_experiment(_config(out, methods=("losia",), resume=True))
    events = _events(out / "tensorboard" / "losia")
    assert len(list((out / "tensorboard" / "losia").iterdir())) == 2  # one event file per process
    results = _results(out, "losia")
    losses = [loss for task in TASKS for loss in results["losses"][task]]
    assert [s for s, _ in events["train/loss"]] == list(range(2 * STEPS))
    assert [v for _, v in events["train/loss"]] == pytest.approx(losses, rel=1e-6)
    for column, task in enumerate(TASKS):
        assert [s for s, _ in events[f"score/{task}"]] == [0, STEPS, 2 * STEPS]
        assert [v for _, v in events[f"score/{task}"]] == pytest.approx([row[column] for row in results["scores"]])


def test_no_event_files_without_the_option(tmp_path):
    out = tmp_path / "run"
    run_experiment(_config(out, methods=("full",), tensorboard=False, tasks=("category",), max_train_examples=4))
    assert (out / "full" / "results.json").exists() and not (out / "tensorboard").exists()


def test_a_missing_tensorboard_package_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from losia_cl.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "tensorboard" else find_spec(name, *a, **k))
    with pytest.raises(ConfigError, match=r"tensorboard = true needs the tensorboard package: "
                                          r"pip install 'losia-cl\[tensorboard\]'"):
        RunConfig(model="tiny-llama", tensorboard=True)
    out = tmp_path / "run"
    code = main(["run", "--model", "tiny-llama", "--tensorboard", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("losia-cl: error: tensorboard = true needs the tensorboard package")
    assert not out.exists()


@pytest.mark.slow
def test_a_continued_run_goes_on_along_the_earlier_steps(tmp_path):
    first = run_experiment(_config(tmp_path / "first", methods=("losia",), tensorboard=False, checkpoint_every=0))
    second = tmp_path / "second"
    run_experiment(_config(second, methods=("losia",), tasks=("check",), from_run=str(first.out_dir),
                           checkpoint_every=0))
    results = _results(second, "losia")
    events = _events(second / "tensorboard" / "losia")
    steps = [results["steps"][t] for t in (*TASKS, "check")]
    assert steps[:2] == [STEPS, STEPS]
    offsets = [0, STEPS, 2 * STEPS, 2 * STEPS + steps[2]]
    # the new task's steps follow the earlier run's; its losses are this run's
    assert events["train/loss"] == [(offsets[2] + i, pytest.approx(v, rel=1e-6))
                                    for i, v in enumerate(results["losses"]["check"])]
    # the score matrix spans the history; a cell the earlier run never measured (None) is left out
    scores = results["scores"]
    assert scores[1][2] is None
    for column, task in enumerate((*TASKS, "check")):
        expected = [(offsets[i], pytest.approx(row[column])) for i, row in enumerate(scores) if row[column] is not None]
        assert events[f"score/{task}"] == expected, task
