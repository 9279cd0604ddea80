"""Learning rates chosen by protocol: the grid, the rule, tune.json, --lr-from, and no look at test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from losia_cl.cli import main
from losia_cl.errors import ConfigError, DataError
from losia_cl.streams import Example, Stream, Task
from losia_cl.trainer import RunConfig
from losia_cl.tune.grid import default_grid, default_lr, parse_grid
from losia_cl.tune.runner import run_tune
from losia_cl.tune.select import GridPoint, choose, read_tune_file

SMALL = dict(model="tiny-llama", batch_size=8, eval_batch_size=16, max_length=32, progress=False, report=False,
             checkpoint_every=0, retention=False)


def test_default_grid_is_five_values_half_a_decade_apart_around_the_default():
    for method in ("losia", "lora", "full"):
        centre = default_lr(method)
        grid = default_grid(method)
        assert len(grid) == 5 and grid[2] == pytest.approx(centre)
        assert grid[0] == pytest.approx(centre / 10) and grid[4] == pytest.approx(centre * 10)
        assert grid[3] == pytest.approx(centre * 10 ** 0.5, rel=2e-3)


def test_grid_overrides_and_their_errors():
    grid = parse_grid(["lora=3e-4,1e-4,3e-4"], ["losia", "lora"])
    assert grid["lora"] == [1e-4, 3e-4] and grid["losia"] == default_grid("losia")
    for entries, message in ((["dora=1e-3"], "not one of the methods tuned"), (["lora=fast"], "not a number"),
                             (["lora=0"], "must be > 0"), (["lora"], "expected METHOD=LR"),
                             (["lora=1e-3", "lora=1e-4"], "given twice")):
        with pytest.raises(ConfigError, match=message):
            parse_grid(entries, ["losia", "lora"])


@pytest.mark.parametrize(("aps", "chosen", "note"), [
    ({1e-4: 0.2, 1e-3: 0.6, 1e-2: 0.4}, 1e-3, None),
    ({1e-4: 0.2, 1e-3: 0.6, 1e-2: 0.6}, 1e-3, None),  # a tie goes to the lower rate
    ({1e-4: 0.7, 1e-3: 0.6, 1e-2: 0.4}, 1e-4, "grid's lowest"),
    ({1e-4: 0.5, 1e-3: 0.5}, 1e-4, "every learning rate scored"),
])
def test_rule_highest_final_ap_ties_to_the_lower_rate(aps, chosen, note):
    points = [GridPoint(lr=lr, ap=ap, scores=[]) for lr, ap in reversed(list(aps.items()))]
    rate, notes = choose(points)
    assert rate == chosen
    assert (note is None and not notes) or (note and note in notes[0])


class SealedTask(Task):
    """A task whose test split raises on access once sealed."""

    def __getattribute__(self, name):
        if name == "test" and object.__getattribute__(self, "__dict__").get("_sealed"):
            raise AssertionError("tune read the test split")
        return object.__getattribute__(self, name)


def constant_stream(eval_answer: str, sealed: bool) -> Stream:
    """One task: training answers are all "A"; eval answers are ``eval_answer``; test answers are all "B"."""
    train = tuple(Example(f"Q{i}:", "A") for i in range(32))
    evaluation = tuple(Example(f"E{i}:", eval_answer) for i in range(6))
    test = tuple(Example(f"T{i}:", "B") for i in range(6))
    task = SealedTask(name="const", train=train, test=test, metric="accuracy", max_new_tokens=2, eval=evaluation)
    if sealed:
        object.__setattr__(task, "_sealed", True)
    return Stream("const", (task,))


@pytest.mark.slow
def test_tune_scores_eval_never_test_and_the_choice_follows_eval(tmp_path):
    grid = {"full": [1e-6, 3e-2]}  # 1e-6 learns nothing; 3e-2 learns to answer "A"
    config = RunConfig(methods=("full",), out=str(tmp_path / "on-eval"), epochs=4, **SMALL)
    outcome = run_tune(config, grid, tune_tasks=1, stream=constant_stream("A", sealed=True))
    aps = {p.lr: p.ap for p in outcome.points["full"]}
    assert aps == {1e-6: 0.0, 3e-2: 1.0} and outcome.chosen == {"full": 3e-2}
    # test answers "B" would score 0 at both rates and pick the lower one; an eval split that looked like
    # test does exactly that
    config = RunConfig(methods=("full",), out=str(tmp_path / "like-test"), epochs=4, **SMALL)
    other = run_tune(config, grid, tune_tasks=1, stream=constant_stream("B", sealed=True))
    assert other.chosen == {"full": 1e-6}
    info = read_tune_file(outcome.path)
    assert info["chosen"] == {"full": 3e-2} and info["splits"] == {"const": "eval"}
    assert [p["ap"] for p in info["grid"]["full"]] == [0.0, 1.0] and len(info["grid"]["full"][1]["scores"]) == 2
    assert "ties" in info["rule"]


def write_tune(path: Path, chosen: dict[str, float], model: str = "tiny-llama", stream: str = "demo") -> Path:
    path.write_text(json.dumps({"format": "losia_cl.tune/1", "stream": stream, "model": model, "chosen": chosen}))
    return path


def test_lr_sources_flag_over_tune_file_over_default(tmp_path):
    tune = write_tune(tmp_path / "tune.json", {"losia": 2e-4, "lora": 5e-4})
    config = RunConfig(methods=("losia", "lora", "full"), lr={"lora": 1e-2}, lr_from=str(tune), **SMALL)
    rates = {m: r.to_dict() for m, r in config.learning_rates().items()}
    assert rates == {"losia": {"lr": 2e-4, "source": "tune.json", "file": str(tune)},
                     "lora": {"lr": 1e-2, "source": "--lr"},
                     "full": {"lr": default_lr("full"), "source": "default"}}


def test_a_tune_file_from_another_model_or_a_bad_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tuned on model 'smollm2-135m', but this run uses model 'tiny-llama'"):
        RunConfig(methods=("losia",), lr_from=str(write_tune(tmp_path / "a.json", {"losia": 1e-3}, "smollm2-135m")),
                  **SMALL)
    (tmp_path / "b.json").write_text('{"format": "losia_cl.tune/1", "stream": "demo", "model": "tiny-llama", '
                                     '"chosen": {"losia": -1}}')
    with pytest.raises(DataError, match="b.json: key chosen"):
        RunConfig(methods=("losia",), lr_from=str(tmp_path / "b.json"), **SMALL)
    with pytest.raises(DataError, match="tune file not found"):
        RunConfig(methods=("losia",), lr_from=str(tmp_path / "none.json"), **SMALL)


@pytest.mark.slow
def test_cli_tune_then_run_with_lr_from_records_the_source(tmp_path, capsys):
    small = ["--model", "tiny-llama", "--methods", "full", "--tasks", "category", "--max-train-examples", "8",
             "--max-test-examples", "4", "--max-steps", "2", "--max-length", "64", "--no-progress"]
    assert main(["tune", *small, "--grid", "full=1e-3,1e-2", "--out", str(tmp_path / "tune")]) == 0
    assert "tune.json" in capsys.readouterr().out
    tune = tmp_path / "tune" / "tune.json"
    chosen = json.loads(tune.read_text())["chosen"]["full"]
    assert main(["run", *small, "--lr-from", str(tune), "--out", str(tmp_path / "run"), "--no-report",
                 "--no-retention"]) == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["learning_rates"]["full"] == {"lr": chosen, "source": "tune.json", "file": str(tune)}
    results = json.loads((tmp_path / "run" / "full" / "results.json").read_text())
    assert results["method_options"]["lr"] == chosen
    assert main(["run", *small, "--lr-from", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "tune file not found" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_grid_points_of_separate_processes_are_collected_by_resume(tmp_path, monkeypatch):
    grid = {"full": [1e-6, 3e-2], "lora": [1e-3]}
    stream = constant_stream("A", sealed=True)
    out = str(tmp_path / "tune")
    first = run_tune(RunConfig(methods=("full",), out=out, epochs=4, **SMALL), {"full": grid["full"]},
                     tune_tasks=1, stream=stream)
    second = run_tune(RunConfig(methods=("lora",), out=out, epochs=4, resume=True, **SMALL), {"lora": grid["lora"]},
                      tune_tasks=1, stream=stream)

    def no_model(*args, **kwargs):
        raise AssertionError("every grid point is finished: no model should load")

    monkeypatch.setattr("losia_cl.models.load_model", no_model)
    both = run_tune(RunConfig(methods=("full", "lora"), out=out, epochs=4, resume=True, **SMALL), grid,
                    tune_tasks=1, stream=stream)
    assert both.chosen == {**first.chosen, **second.chosen} and both.chosen["full"] == 3e-2
    assert read_tune_file(both.path)["grid"]["full"] == read_tune_file(first.path)["grid"]["full"]
