"""Learning rates chosen by protocol: the grid, the rule, tune.json, --lr-from, and no look at test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from losia_cl.cli import main
from losia_cl.errors import ConfigError, DataError
from losia_cl.streams import Example, Stream, Task
from losia_cl.trainer import RunConfig
from losia_cl.trainer.run_folder import RunLock
from losia_cl.tune.grid import MAX_EXTENSIONS, check_grid, default_grid, default_lr, extend, parse_grid
from losia_cl.tune.runner import _tune_method, describe, run_tune
from losia_cl.tune.select import TOLERANCE, GridPoint, SeedRun, choose, read_tune_file

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
                             (["lora=0"], "must be > 0"), (["lora=1e-4,5"], "5 must be > 0 and <= 1"),
                             (["lora=nan"], "must be > 0"), (["lora"], "expected METHOD=LR"),
                             (["lora=1e-3", "lora=1e-4"], "given twice")):
        with pytest.raises(ConfigError, match=message):
            parse_grid(entries, ["losia", "lora"])
    with pytest.raises(ConfigError, match="grid of full: learning rate 2.0 must be"):
        check_grid({"full": [1e-4, 2.0]}, ["full"])
    with pytest.raises(ConfigError, match="no learning-rate grid for lora"):
        check_grid({"full": [1e-4]}, ["full", "lora"])


def test_extension_steps_half_a_decade_and_stops_above_one():
    assert extend(1e-3, "highest") == 0.00316 and extend(1e-3, "lowest") == 0.000316
    assert extend(0.316, "highest") == 1.0 and extend(1.0, "highest") is None


def point(lr: float, *las: float, ap: float = 0.0) -> GridPoint:
    return GridPoint(lr=lr, runs=tuple(SeedRun(seed=i, la=la, ap=ap, scores=[]) for i, la in enumerate(las)))


@pytest.mark.parametrize(("las", "chosen", "edge"), [
    ({1e-4: 0.2, 1e-3: 0.6, 1e-2: 0.4}, 1e-3, None),
    ({1e-4: 0.2, 1e-3: 0.6, 1e-2: 0.6 + TOLERANCE / 2}, 1e-3, None),  # within the tolerance: the lower rate
    ({1e-4: 0.2, 1e-3: 0.6, 1e-2: 0.6 + 2 * TOLERANCE}, 1e-2, "highest"),
    ({1e-4: 0.7, 1e-3: 0.6, 1e-2: 0.4}, 1e-4, "lowest"),
    ({1e-4: 0.0, 1e-3: 0.0}, 1e-4, None),  # nothing learned: no edge to widen, a note instead
])
def test_rule_highest_la_ties_within_tolerance_to_the_lower_rate(las, chosen, edge):
    choice = choose([point(lr, la) for lr, la in reversed(list(las.items()))])
    assert (choice.lr, choice.edge) == (chosen, edge)
    assert bool(choice.notes) == (max(las.values()) == 0.0)


def test_the_rule_averages_the_seeds_and_ignores_final_ap():
    # seed means: 1e-4 -> 0.5, 1e-3 -> 0.55; 1e-4 has the better final AP, which the rule does not use
    points = [point(1e-4, 0.9, 0.1, ap=0.9), point(1e-3, 0.5, 0.6, ap=0.1), point(1e-2, 0.0, 0.2)]
    assert points[1].la == pytest.approx(0.55) and choose(points).lr == 1e-3


def fake_points(peak: float, calls: list[float]):
    """A grid point function whose LA falls with the distance (in decades) from ``peak``."""
    import math

    def make(method: str, lr: float, extended: bool) -> GridPoint:
        calls.append(lr)
        return GridPoint(lr=lr, runs=(SeedRun(0, 1 - abs(math.log10(lr / peak)) / 4, 0.0, []),), extended=extended)

    return make


def test_the_grid_grows_beyond_an_edge_until_the_best_rate_is_inside():
    calls: list[float] = []
    points, choice = _tune_method("full", [1e-5, 3.16e-5, 1e-4], fake_points(3e-4, calls), MAX_EXTENSIONS)
    assert calls == [1e-5, 3.16e-5, 1e-4, 0.000316, 0.001]  # one extension finds 3.16e-4, one more confirms it
    assert (choice.lr, choice.edge, choice.notes) == (0.000316, None, ())
    assert [p.extended for p in points] == [False, False, False, True, True]


def test_a_choice_still_at_an_edge_after_the_extensions_is_reported():
    calls: list[float] = []
    points, choice = _tune_method("full", [1e-5, 1e-4], fake_points(1e-1, calls), 2)
    assert calls == [1e-5, 1e-4, 0.000316, 0.001] and choice.edge == "highest" and choice.lr == 0.001
    assert "grid's highest (after 2 extension(s) on that side" in choice.notes[0]
    calls.clear()
    _, top = _tune_method("full", [0.1, 0.316], fake_points(10.0, calls), 2)
    assert calls == [0.1, 0.316, 1.0] and top.lr == 1.0 and "largest rate allowed" in top.notes[0]


class SealedExample(Example):
    """A test example whose answer raises once sealed: tune may read test prompts (the overlap check), never
    test answers (which only scoring would need)."""

    def __getattribute__(self, name):
        if name == "answer" and object.__getattribute__(self, "__dict__").get("_sealed"):
            raise AssertionError("tune read a test answer")
        return object.__getattribute__(self, name)


def constant_stream(eval_answer: str, shared: int = 0) -> Stream:
    """One task: training answers are all "A"; eval answers are ``eval_answer``; test answers "B" (sealed).
    The first ``shared`` eval prompts are also test prompts."""
    train = tuple(Example(f"Q{i}:", "A") for i in range(32))
    evaluation = tuple(Example(f"T{i}:" if i < shared else f"E{i}:", eval_answer) for i in range(6))
    test = tuple(SealedExample(f"T{i}:", "B") for i in range(6))
    for example in test:
        object.__setattr__(example, "_sealed", True)
    task = Task(name="const", train=train, test=test, metric="accuracy", max_new_tokens=2, eval=evaluation)
    return Stream("const", (task,))


@pytest.mark.slow
def test_tune_scores_eval_never_test_averages_two_seeds_and_reports_overlap_and_edge(tmp_path, caplog):
    grid = {"full": [1e-6, 3e-2]}  # 1e-6 learns nothing; 3e-2 learns to answer "A"
    config = RunConfig(methods=("full",), out=str(tmp_path / "on-eval"), epochs=2, **SMALL)
    outcome = run_tune(config, grid, tune_tasks=1, max_extensions=0, stream=constant_stream("A", shared=1))
    las = {p.lr: p.la for p in outcome.points["full"]}
    assert las == {1e-6: 0.0, 3e-2: 1.0} and outcome.chosen == {"full": 3e-2}
    assert outcome.edges == {"full": "highest"} and "at the grid's highest edge" in describe(outcome)
    assert "extensions are off" in outcome.notes["full"][0]
    info = read_tune_file(outcome.path)
    assert info["tune_seeds"] == [0, 1] and info["criterion"] == "eval_learning_accuracy"
    assert [[r["seed"] for r in p["runs"]] for p in info["grid"]["full"]] == [[0, 1], [0, 1]]
    assert info["chosen"] == {"full": 3e-2} and info["edge"] == {"full": "highest"}
    assert info["splits"] == {"const": "eval"}
    assert info["eval_test_overlap"] == {"0": {"const": 1}, "1": {"const": 1}}
    assert "1 eval prompt(s) of task const (seed 0) are also test prompts" in caplog.text
    # test answers "B" would score 0 at both rates and pick the lower one; an eval split that looked like
    # test does exactly that
    config = RunConfig(methods=("full",), out=str(tmp_path / "like-test"), epochs=2, **SMALL)
    other = run_tune(config, grid, tune_tasks=1, tune_seeds=[3], stream=constant_stream("B"))
    assert other.chosen == {"full": 1e-6} and other.edges == {"full": None}
    assert "no learning rate learned anything" in read_tune_file(other.path)["notes"]["full"][0]


def test_tune_checks_the_grid_and_the_folder_before_writing_anything(tmp_path, capsys):
    small = ["--model", "tiny-llama", "--methods", "full", "--tasks", "category", "--max-train-examples", "8",
             "--max-test-examples", "4", "--max-steps", "1", "--no-progress"]
    assert main(["tune", *small, "--grid", "full=1e-4,5", "--out", str(tmp_path / "bad-grid")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5 must be > 0 and <= 1" in err[0] and not (tmp_path / "bad-grid").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["tune", *small, "--grid", "full=1e-4", "--out", str(foreign)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a losia-cl tune folder" in err[0]
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert main(["tune", *small, "--grid", "full=1e-4", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "there is no tune to continue" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["tune", *small, "--tune-seeds", "0,0", "--out", str(tmp_path / "seeds")])
    assert usage.value.code == 2 and "--tune-seeds: '0,0' must list at least one seed, each once" in \
        capsys.readouterr().err and not (tmp_path / "seeds").exists()


def test_a_tune_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "tune"
    config = RunConfig(methods=("full",), out=str(out), tasks=("category",), max_train_examples=8,
                       max_test_examples=4, max_steps=1, **SMALL)
    with RunLock(out):
        with pytest.raises(ConfigError, match="in use by another losia-cl process"):
            run_tune(config, {"full": [1e-4]}, tune_tasks=1, tune_seeds=[0])
    assert [p.name for p in out.iterdir()] == [".losia-cl.lock"]


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
    assert main(["tune", *small, "--grid", "full=1e-3,1e-2", "--tune-seeds", "0", "--max-extensions", "0",
                 "--out", str(tmp_path / "tune")]) == 0
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
    stream = constant_stream("A")
    out = str(tmp_path / "tune")
    first = run_tune(RunConfig(methods=("full",), out=out, epochs=4, **SMALL), {"full": grid["full"]},
                     tune_tasks=1, tune_seeds=[0], max_extensions=0, stream=stream)
    with pytest.raises(ConfigError, match="pass --resume to continue that tune"):
        run_tune(RunConfig(methods=("lora",), out=out, epochs=4, **SMALL), {"lora": grid["lora"]},
                 tune_tasks=1, tune_seeds=[0], stream=stream)
    with pytest.raises(ConfigError, match="written with different max_steps"):
        run_tune(RunConfig(methods=("lora",), out=out, epochs=4, max_steps=3, resume=True, **SMALL),
                 {"lora": grid["lora"]}, tune_tasks=1, tune_seeds=[0], stream=stream)
    second = run_tune(RunConfig(methods=("lora",), out=out, epochs=4, resume=True, **SMALL), {"lora": grid["lora"]},
                      tune_tasks=1, tune_seeds=[0], max_extensions=0, stream=stream)

    def no_model(*args, **kwargs):
        raise AssertionError("every grid point is finished: no model should load")

    monkeypatch.setattr("losia_cl.models.load_model", no_model)
    both = run_tune(RunConfig(methods=("full", "lora"), out=out, epochs=4, resume=True, **SMALL), grid,
                    tune_tasks=1, tune_seeds=[0], max_extensions=0, stream=stream)
    assert both.chosen == {**first.chosen, **second.chosen} and both.chosen["full"] == 3e-2
    assert read_tune_file(both.path)["grid"]["full"] == read_tune_file(first.path)["grid"]["full"]
