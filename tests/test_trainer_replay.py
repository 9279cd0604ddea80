"""Experience replay: the replayed share, a bounded seeded buffer, METHOD+replay runs; resume with ewc+replay, olora."""

from __future__ import annotations

import pytest

from losia_cl.errors import LosiaError
from losia_cl.streams import load_stream
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.methods import create_method
from losia_cl.trainer.checkpoint import CHECKPOINT_NAME, Checkpoint
from losia_cl.trainer.extras import TrainingExtras
from losia_cl.trainer.plan import BatchPlan
from losia_cl.trainer.replay import ReplayBuffer, mix_replay, replay_counts

TASKS = ("category", "position", "successor")
TINY = dict(model="tiny-llama", tasks=TASKS, max_train_examples=6, max_test_examples=2, batch_size=2,
            eval_batch_size=4, max_length=48, progress=False, report=False, retention=False, checkpoint_every=1)


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.8])
@pytest.mark.parametrize("sizes", [[8] * 10, [2] * 25, [3, 3, 3, 1] * 4])
def test_the_replayed_share_holds_batch_by_batch_up_to_rounding(sizes, share):
    counts = replay_counts(sizes, share)
    for j in range(1, len(sizes) + 1):  # after every micro-batch: within one example of the share
        replayed, own = sum(counts[:j]), sum(sizes[:j])
        assert abs(replayed - share * (replayed + own)) <= 1
    if sizes[0] == 8:  # large micro-batches: each one alone holds the share up to one example
        assert all(abs(k - share * (k + 8)) <= 1 for k in counts)


def test_mixing_appends_buffer_examples_and_keeps_the_tasks_own_in_order():
    steps = BatchPlan(epochs=2, batch_size=4, grad_accum=2, seed=3).steps(10, task_index=1)
    mixed = mix_replay(steps, offset=10, buffer_size=7, share=0.25, seed=3, task_index=1)
    assert len(mixed) == len(steps) and [len(s) for s in mixed] == [len(s) for s in steps]
    own = [[i for i in micro if i < 10] for step in mixed for micro in step]
    assert own == [micro for step in steps for micro in step]
    replayed = [i - 10 for step in mixed for micro in step for i in micro if i >= 10]
    assert len(replayed) == round(0.25 / 0.75 * 20) and all(0 <= k < 7 for k in replayed)
    first_pass = replayed[:7]
    assert sorted(first_pass) == list(range(7))  # a shuffled pass over the whole buffer before any repeat
    assert mix_replay(steps, 10, 7, 0.25, seed=3, task_index=1) == mixed  # deterministic
    assert mix_replay(steps, 10, 7, 0.25, seed=4, task_index=1) != mixed
    assert mix_replay(steps, 10, 0, 0.25, seed=3, task_index=1) == steps  # an empty buffer replays nothing


def test_the_buffer_keeps_a_bounded_seeded_sample_of_every_task():
    stream = load_stream("demo")
    buffer = ReplayBuffer(per_task=5, seed=1)
    for index, task in enumerate(stream.tasks[:3]):
        buffer.add_task(task.name, index, len(task.train))
    assert len(buffer) == 15 and all(len(v) == 5 for v in buffer.kept.values())
    size = len(stream.tasks[0].train)
    assert all(len(set(v.tolist())) == 5 and 0 <= int(v.min()) and int(v.max()) < size for v in buffer.kept.values())
    examples = buffer.examples({t.name: t.train for t in stream})
    assert examples[:5] == [stream.tasks[0].train[i] for i in buffer.kept["category"].tolist()]
    again = ReplayBuffer(per_task=5, seed=1)
    again.add_task("category", 0, size)
    assert again.kept["category"].tolist() == buffer.kept["category"].tolist()
    other = ReplayBuffer(per_task=5, seed=2)
    other.add_task("category", 0, size)
    assert other.kept["category"].tolist() != buffer.kept["category"].tolist()
    small = ReplayBuffer(per_task=500, seed=1)
    small.add_task("category", 0, 6)
    assert sorted(small.kept["category"].tolist()) == list(range(6))  # never more than the task has


@pytest.mark.parametrize(("overrides", "message"), [
    ({"methods": ("full",), "replay": 0.2}, "replay: no method replays; name the methods that should as "
                                            "METHOD+replay"),
    ({"methods": ("full",), "replay_buffer": 4}, "replay_buffer: no method replays"),
    ({"methods": ("full+replay",), "replay": 0}, "replay = 0 is invalid: it must be a number between 0 and 1"),
    ({"methods": ("full+replay",), "replay": 1.0}, "replay = 1.0 is invalid"),
    ({"methods": ("full+replay",), "replay": True}, "replay = True is invalid"),
    ({"methods": ("full+replay",), "replay_buffer": 0}, "replay_buffer = 0 is invalid: it must be an integer from 1"),
    ({"methods": ("nosuch+replay",)}, "unknown method .nosuch.; known methods: "),
    ({"methods": ("full+replay",), "method_options": {"full+replay": {"rank": 3}}}, "unknown option 'rank'"),
])
def test_bad_replay_settings_are_one_line_errors(overrides, message):
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace("+", r"\+")) as info:
        RunConfig(**{**TINY, **overrides})
    assert "\n" not in str(info.value) and isinstance(info.value, LosiaError)


def test_replay_runs_beside_the_plain_method_and_records_its_share(tmp_path):
    config = RunConfig(out=str(tmp_path), methods=("full", "full+replay"), replay=0.4, replay_buffer=3,
                       lr={"full": 1e-3, "full+replay": 1e-3}, **TINY)
    results = run_experiment(config).results
    plain, replayed = results["full"], results["full+replay"]
    assert replayed["method"] == "full+replay" and (tmp_path / "full+replay" / "results.json").exists()
    # the first task has nothing to replay: the same training as the plain method
    assert replayed["losses"]["category"] == plain["losses"]["category"]
    assert replayed["losses"]["position"] != plain["losses"]["position"]
    assert replayed["steps"] == plain["steps"]
    record = {t: replayed["method_record"][t]["replay"] for t in TASKS}
    assert [record[t]["buffer_examples"] for t in TASKS] == [0, 3, 6]
    assert record["category"]["replayed_examples"] == 0
    for task in TASKS[1:]:  # 6 own examples; replayed round(0.4/0.6 * 6) = 4
        assert (record[task]["replayed_examples"], record[task]["trained_examples"]) == (4, 10)
    assert plain["method_record"]["position"] == {}


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize(("method", "options", "extras", "stop", "on_disk"), [
    # stopped in task 3 at step 2: resumes from step 1 of task 3
    ("ewc+replay", {"lr": 1e-3, "fisher_examples": 3, "lam": 100.0}, ["method", "replay"], (2, 2), (2, 1)),
    # stopped at task 3's first step: resumes from task 2's end, before its Fisher and its examples' buffer entry
    ("ewc+replay", {"lr": 1e-3, "fisher_examples": 3, "lam": 100.0}, ["method", "replay"], (2, 1), (1, 3)),
    ("olora", {"lr": 1e-2, "lambda_orth": 1.0, "lambda_l2": 0.1}, ["method"], (2, 2), (2, 1)),
])
def test_resume_gives_the_uninterrupted_results(tmp_path, monkeypatch, method, options, extras, stop, on_disk):
    def config(out, **overrides):
        replay = dict(replay=0.3, replay_buffer=2) if method.endswith("+replay") else {}
        return RunConfig(out=str(out), methods=(method,), method_options={method: options},
                         **{**TINY, **replay, **overrides})

    reference = run_experiment(config(tmp_path / "ref")).results[method]
    save = Checkpoint.save
    calls = []

    def save_then_stop(self, folder, sync=None, root=None):
        calls.append((self.task_index, self.step, sorted(self.extras)))
        if calls[-1][:2] == stop:  # stop before it reaches the disk
            raise _Interrupted
        return save(self, folder, root=root)

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    with pytest.raises(_Interrupted):
        run_experiment(config(tmp_path / "crash"))
    monkeypatch.setattr(Checkpoint, "save", save)
    assert calls[-1] == (*stop, extras)
    saved = Checkpoint.load(tmp_path / "crash" / method)
    assert (saved.task_index, saved.step) == on_disk
    assert saved.extras["method"]  # the Fisher and the anchor, or the earlier A matrices
    assert len(saved.extras.get("replay", {})) == (on_disk[0] if "replay" in extras else 0)  # earlier tasks
    resumed = run_experiment(config(tmp_path / "crash", resume=True)).results[method]
    for key in ("scores", "losses", "method_record", "loglik_scores", "steps"):
        assert resumed[key] == reference[key], key
    assert not (tmp_path / "crash" / method / CHECKPOINT_NAME).exists()
    if method == "ewc+replay":  # a checkpoint of a run with replay does not fit the same method without it
        with pytest.raises(ValueError, match="do not fit"):
            TrainingExtras(create_method("ewc"), share=None, per_task=2, seed=0).restore(saved.extras)


def test_a_replaying_method_takes_its_own_rate_else_the_plain_methods_tuned_rate(tmp_path):
    import json

    from losia_cl.tune.grid import default_lr

    tune = tmp_path / "tune.json"
    tune.write_text(json.dumps({"format": "losia_cl.tune/1", "stream": "demo", "model": "tiny-llama",
                                "chosen": {"lora": 5e-4, "full": 2e-5, "full+replay": 3e-5}}))
    config = RunConfig(**{**TINY, "tasks": None}, methods=("lora+replay", "full+replay", "losia+replay"),
                       lr={"losia+replay": 7e-3}, lr_from=str(tune))
    rates = {m: (r.lr, r.source) for m, r in config.learning_rates().items()}
    assert rates == {"lora+replay": (5e-4, "tune.json"), "full+replay": (3e-5, "tune.json"),
                     "losia+replay": (7e-3, "--lr")}
    assert config.options_for("lora+replay") == {"lr": 5e-4}
    assert default_lr("lora+replay") == default_lr("lora") == 1e-3


def test_a_continued_run_replays_the_earlier_tasks_and_refuses_a_regularizing_method(tmp_path):
    options = {**TINY, "tasks": ("category",), "checkpoint_every": 0}
    first = run_experiment(RunConfig(out=str(tmp_path / "first"), methods=("full+replay",), replay_buffer=3,
                                     **options)).out_dir
    second = run_experiment(RunConfig(out=str(tmp_path / "second"), methods=("full+replay",), replay_buffer=3,
                                      from_run=str(first), **{**options, "tasks": ("position",)}))
    record = second.results["full+replay"]["method_record"]["position"]["replay"]
    assert (record["buffer_examples"], record["replayed_examples"]) == (3, 2)  # round(0.25/0.75 · 6)
    run_experiment(RunConfig(out=str(tmp_path / "ewc"), methods=("ewc",), **options))
    with pytest.raises(LosiaError, match=r"ewc learn\(s\) from every earlier task .* they cannot be continued"):
        run_experiment(RunConfig(out=str(tmp_path / "ewc2"), methods=("ewc",), from_run=str(tmp_path / "ewc"),
                                 **{**options, "tasks": ("position",)}))
    assert not (tmp_path / "ewc2").exists()
