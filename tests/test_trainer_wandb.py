"""``losia-cl run --wandb``: every method's offline W&B run holds the run's losses, applied learning rates,
scores and subnet overlap on the TensorBoard step axis, W&B stays offline and quiet, WANDB_PROJECT is
respected, a resumed method starts a new run from its checkpoint, and a missing wandb package is one line."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import socket
import struct
from pathlib import Path

import pytest

from losia_cl.errors import ConfigError
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.checkpoint import Checkpoint

wandb_internal_pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2",
                                         reason="the wandb package is not installed (pip install wandb)")

TASKS = ("category", "position")
STEPS = 8  # 32 examples in batches of 4, one epoch
SMALL = dict(model="tiny-llama", tasks=TASKS, max_train_examples=32, max_test_examples=4, batch_size=4,
             eval_batch_size=8, max_length=64, progress=False, report=False, retention=False, save_models=False,
             checkpoint_every=1, wandb=True)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """W&B as a user without settings has it (no mode, project or folder chosen), printing nothing; this
    process may open no connection beyond the machine (W&B's own service listens on a local socket)."""
    for name in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    connect = socket.socket.connect

    def local_only(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = "127.0.0.1" if address[0] == "localhost" else address[0]
            if not ipaddress.ip_address(host).is_loopback:  # a host name (not an address) fails here too
                raise AssertionError(f"a connection to {address} was opened")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


def _config(out: Path, methods=("losia", "full"), **overrides) -> RunConfig:
    return RunConfig(methods=methods, out=str(out), lr={m: 1e-2 for m in methods},
                     method_options={"losia": {"period": 2}} if "losia" in methods else None,
                     **{**SMALL, **overrides})


def _records(path: Path):
    """The records of a ``.wandb`` file: W&B's LevelDB-style log (a 7-byte file header, then 32 KiB blocks of
    chunks, each with a 7-byte header: checksum, length, kind 1 whole, 2 first, 3 middle, 4 last)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _read_run(folder: Path) -> dict:
    """The run record, history ({tag: [(step, value)]}, as W&B would upload it) and exit code of an offline run
    folder."""
    (path,) = folder.glob("run-*.wandb")
    run, history, exit_code = None, {}, None
    for record in _records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "exit":
            exit_code = record.exit.exit_code
        elif kind == "history":
            for item in record.history.item:
                tag = item.key or "/".join(item.nested_key)
                if not tag.startswith("_"):
                    history.setdefault(tag, []).append((record.history.step.num, json.loads(item.value_json)))
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    return {"name": run.display_name, "group": run.run_group, "project": run.project, "config": config,
            "history": history, "exit_code": exit_code,
            "started": (run.start_time.seconds, run.start_time.nanos)}


def _runs(out: Path) -> dict[str, list[dict]]:
    """Every offline run under ``out/wandb``, by name, oldest first."""
    runs: dict[str, list[dict]] = {}
    for run in sorted((_read_run(f) for f in (out / "wandb").glob("offline-run-*")), key=lambda r: r["started"]):
        runs.setdefault(run["name"], []).append(run)
    return runs


def _results(out: Path, method: str) -> dict:
    return json.loads((out / method / "results.json").read_text())


@pytest.mark.slow
def test_offline_runs_hold_the_losses_scores_and_tensorboard_scalars(tmp_path):
    out = tmp_path / "run"
    run_experiment(_config(out, tensorboard=importlib.util.find_spec("tensorboard") is not None))
    assert not list((out / "wandb").glob("run-*"))  # offline: no synced run folder
    runs = _runs(out)
    assert sorted(runs) == ["run/full", "run/losia"]
    for method in ("losia", "full"):
        (run,) = runs[f"run/{method}"]
        results = _results(out, method)
        assert (run["group"], run["project"]) == ("run", "losia-cl")
        assert run["config"]["method"] == method and run["config"]["tasks"] == list(TASKS)
        assert run["config"]["options"] == ({"period": 2, "lr": 1e-2} if method == "losia" else {"lr": 1e-2})
        history = run["history"]
        expected = {"train/loss", "train/lr", *(f"score/{t}" for t in TASKS)}
        if method == "losia":
            expected |= {"subnet/task_coverage", "subnet/cumulative_coverage", "subnet/jaccard_prev",
                         "subnet/jaccard_ratio_prev"}
        assert set(history) == expected
        # one step axis across tasks; the values exactly as results.json keeps them
        losses = [loss for task in TASKS for loss in results["losses"][task]]
        assert history["train/loss"] == list(enumerate(losses))
        assert [s for s, _ in history["train/lr"]] == list(range(len(TASKS) * STEPS))
        for index, task in enumerate(TASKS):
            lrs = [v for s, v in history["train/lr"] if index * STEPS <= s < (index + 1) * STEPS]
            assert sum(lrs) == pytest.approx(results["lr_mass"][task], rel=1e-12)
        for column, task in enumerate(TASKS):
            assert history[f"score/{task}"] == [(STEPS * stage, row[column])
                                                for stage, row in enumerate(results["scores"])]
        if method == "losia":
            overlap = results["subnet_overlap"]
            assert history["subnet/cumulative_coverage"] == [
                (STEPS * (i + 1), pytest.approx(c, rel=1e-12)) for i, c in enumerate(overlap["cumulative_coverage"])]
            assert history["subnet/jaccard_prev"] == [(2 * STEPS, pytest.approx(overlap["coverage_jaccard"][0][1]))]
        if (out / "tensorboard").exists():  # the same scalars as the TensorBoard events (float32 there)
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

            events = EventAccumulator(str(out / "tensorboard" / method))
            events.Reload()
            assert set(events.Tags()["scalars"]) == set(history)
            for tag, points in history.items():
                assert [(e.step, pytest.approx(e.value, rel=1e-6, abs=1e-12)) for e in events.Scalars(tag)] == points


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_a_resumed_method_starts_a_new_run_at_its_checkpoint(tmp_path, monkeypatch):
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
    run_experiment(_config(out, methods=("losia",), resume=True))
    interrupted, resumed = _runs(out)["run/losia"]
    results = _results(out, "losia")
    losses = [loss for task in TASKS for loss in results["losses"][task]]
    # the interrupted run logged through the step whose checkpoint failed, and is marked failed
    assert interrupted["history"]["train/loss"][:-1] == list(enumerate(losses))[:STEPS + 2]
    assert [s for s, _ in interrupted["history"]["train/loss"]][-1] == STEPS + 2
    assert (interrupted["exit_code"], resumed["exit_code"]) == (1, 0)
    # the new run goes on from the checkpoint (steps 2 and 3 of task 2 are redone)
    assert resumed["history"]["train/loss"] == list(enumerate(losses))[STEPS + 2:]
    for column, task in enumerate(TASKS):
        assert resumed["history"][f"score/{task}"] == [(2 * STEPS, results["scores"][2][column])]


def test_a_quiet_run_prints_nothing_of_wandb_and_project_comes_from_the_environment(tmp_path, monkeypatch, capfd):
    from losia_cl.cli import main

    import wandb

    monkeypatch.delenv("WANDB_SILENT")
    monkeypatch.setenv("WANDB_PROJECT", "elsewhere")
    wandb.teardown()  # W&B keeps the environment it saw first in the process: let it read this one
    out = tmp_path / "quiet"
    code = main(["-q", "run", "--model", "tiny-llama", "--methods", "full", "--tasks", "category",
                 "--max-train-examples", "4", "--max-test-examples", "2", "--batch-size", "4", "--max-length", "64",
                 "--no-retention", "--no-report", "--no-save", "--wandb", "--out", str(out)])
    captured = capfd.readouterr()
    assert code == 0
    assert "wandb" not in captured.err.lower() and "wandb" not in captured.out.lower(), captured
    (run,) = _runs(out)["quiet/full"]
    assert run["project"] == "elsewhere"
    assert [s for s, _ in run["history"]["train/loss"]] == [0]


def test_no_wandb_folder_without_the_option(tmp_path):
    out = tmp_path / "run"
    run_experiment(_config(out, methods=("full",), wandb=False, tasks=("category",), max_train_examples=4))
    assert (out / "full" / "results.json").exists() and not (out / "wandb").exists()


def test_a_missing_wandb_package_is_one_line(tmp_path, monkeypatch, capsys):
    from losia_cl.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "wandb" else find_spec(name, *a, **k))
    with pytest.raises(ConfigError, match=r"wandb = true needs the wandb package: pip install wandb"):
        RunConfig(model="tiny-llama", wandb=True)
    out = tmp_path / "run"
    code = main(["run", "--model", "tiny-llama", "--wandb", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err == "losia-cl: error: wandb = true needs the wandb package: pip install wandb\n"
    assert not out.exists()


def test_run_names_and_groups_follow_the_out_folder(tmp_path):
    from losia_cl.multiseed import SEEDS_FILE
    from losia_cl.trainer.wandb_log import run_name

    assert run_name(tmp_path / "demo", "losia") == ("demo/losia", "demo")
    root = tmp_path / "sweep"
    root.mkdir()
    assert run_name(root / "seed1", "lora") == ("seed1/lora", "seed1")  # not a --seeds root (no seeds.json)
    (root / SEEDS_FILE).write_text("{}")
    assert run_name(root / "seed1", "lora") == ("sweep/seed1/lora", "sweep")
