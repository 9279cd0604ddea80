"""CausalLMStrategy: dict batches, answer-only logits, replay, refused plugins, score-fed transfer metrics, loggers."""

from __future__ import annotations

import io

import pytest
import torch

pytest.importorskip("avalanche")

from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics  # noqa: E402
from avalanche.logging import InteractiveLogger, TextLogger  # noqa: E402
from avalanche.training.plugins import (  # noqa: E402
    AGEMPlugin,
    EvaluationPlugin,
    EWCPlugin,
    LRSchedulerPlugin,
    LwFPlugin,
    ReplayPlugin,
    SynapticIntelligencePlugin,
)

import losia_cl.avalanche.strategy as strategy_module  # noqa: E402
from losia_cl.avalanche import (  # noqa: E402
    CausalLMStrategy,
    IncompatiblePluginError,
    as_benchmark,
    score_bwt_metrics,
    score_forgetting_metrics,
    score_forward_transfer_metrics,
    stability_metrics,
    subnet_overlap_metrics,
    task_score_metrics,
)
from losia_cl.errors import ConfigError, DataError, LosiaError  # noqa: E402
from losia_cl.metrics import cl_metrics  # noqa: E402
from losia_cl.models import load_model  # noqa: E402
from losia_cl.streams import load_stream  # noqa: E402
from losia_cl.trainer import RunConfig  # noqa: E402
from losia_cl.trainer.evaluate import TaskEvaluation  # noqa: E402

TASKS = ["category", "position", "check"]


def _setup(num_train: int = 8, tasks=TASKS):
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-llama")
    stream = load_stream("demo", num_train=num_train, num_test=2, seed=0, tasks=list(tasks))
    return model, tokenizer, as_benchmark(stream, tokenizer, max_length=48)


def _quiet() -> EvaluationPlugin:
    return EvaluationPlugin(loss_metrics(epoch=True), accuracy_metrics(epoch=True), loggers=[])


class Recorder(SupervisedPlugin):
    """Notes what every training iteration saw."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def after_forward(self, strategy, **kwargs):
        batch = strategy.mbatch
        self.rows.append({
            "experience": strategy.clock.train_exp_counter,
            "keys": set(batch),
            "batch": tuple(batch["input_ids"].shape),
            "task_labels": batch["task_labels"].tolist(),
            "answer_tokens": int((batch["labels"][:, 1:] != -100).sum()),
            "output": tuple(strategy.mb_output.shape),
            "mb_y": tuple(strategy.mb_y.shape),
            "mb_task_id": strategy.mb_task_id.tolist(),
            "mb_x": set(strategy.mb_x),
        })


def test_replay_with_dict_batches_and_answer_only_logits():
    model, tokenizer, benchmark = _setup()
    recorder, replay = Recorder(), ReplayPlugin(mem_size=6)
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia", method_options={"lr": 1e-2},
                                train_mb_size=4, plugins=[replay, recorder], evaluator=_quiet(), generate=False)
    strategy.train(benchmark.train_stream)
    vocab = model.config.vocab_size
    assert [r["experience"] for r in recorder.rows] == [0, 0, 1, 1, 2, 2]  # 8 examples / 4 per batch
    for row in recorder.rows:
        assert row["keys"] == {"input_ids", "labels", "attention_mask", "task_labels"}
        assert row["mb_x"] == {"input_ids", "attention_mask"}
        # logits only where the loss needs them: one row per answer token, never [batch, length, vocab]
        assert row["output"] == (row["answer_tokens"], vocab) and row["mb_y"] == (row["answer_tokens"],)
        assert len(row["mb_task_id"]) == row["answer_tokens"]
        assert row["answer_tokens"] < row["batch"][0] * row["batch"][1]
    first, later = recorder.rows[:2], recorder.rows[2:]
    assert all(r["batch"][0] == 4 and set(r["task_labels"]) == {0} for r in first)
    for row in later:  # 4 current examples + up to 4 from the replay memory (6 examples)
        current = row["experience"]
        assert 4 < row["batch"][0] <= 8 and row["task_labels"][:4] == [current] * 4
        assert set(row["task_labels"][4:]) <= set(range(current)) and row["task_labels"][4:]
    assert len(replay.storage_policy.buffer) == 6
    assert {k: len(v) for k, v in strategy.losses.items()} == {t: 2 for t in TASKS}
    assert strategy.steps == {t: 2 for t in TASKS}
    metrics = strategy.evaluator.get_last_metrics()
    assert "Top1_Acc_Epoch/train_phase/train_stream/Task002" in metrics  # answer-token accuracy
    assert metrics["Loss_Epoch/train_phase/train_stream/Task002"] > 0


def test_replay_with_another_batch_size_is_refused_before_training():
    model, tokenizer, benchmark = _setup()
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, train_mb_size=4, evaluator=_quiet(),
                                plugins=[ReplayPlugin(mem_size=4, batch_size=2)], generate=False)
    strategy.train(benchmark.train_stream[0])
    with pytest.raises(ConfigError, match="ReplayPlugin\\(batch_size=None\\)"):
        strategy.train(benchmark.train_stream[1])


@pytest.mark.parametrize("plugin", [
    EWCPlugin(ewc_lambda=1.0), AGEMPlugin(patterns_per_experience=4, sample_size=4), LwFPlugin(),
])
def test_plugins_that_need_tuple_batches_are_refused_by_name(plugin):
    model, tokenizer, benchmark = _setup(num_train=4, tasks=TASKS[:2])
    name = type(plugin).__name__
    with pytest.raises(IncompatiblePluginError, match=f"^{name} cannot be used with CausalLMStrategy") as info:
        CausalLMStrategy(model=model, tokenizer=tokenizer, plugins=[plugin], evaluator=_quiet())
    assert info.value.plugin == name and isinstance(info.value, ConfigError)
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, train_mb_size=4, evaluator=_quiet(), generate=False)
    strategy.plugins.append(plugin)  # added after construction: refused when training starts, not a KeyError
    with pytest.raises(IncompatiblePluginError, match=name):
        strategy.train(benchmark.train_stream)


def test_method_specific_refusals_and_schedulers():
    model, tokenizer, _ = _setup(num_train=4, tasks=TASKS[:1])
    with pytest.raises(IncompatiblePluginError, match="SynapticIntelligencePlugin .*LoSiA-Pro"):
        CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia-pro", evaluator=_quiet(),
                         plugins=[SynapticIntelligencePlugin(si_lambda=1.0)])
    with pytest.raises(IncompatiblePluginError, match="SynapticIntelligencePlugin .*LoSiA-Pro"):
        CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia", evaluator=_quiet(),
                         plugins=[SynapticIntelligencePlugin(si_lambda=1.0)])
    CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia", evaluator=_quiet(),
                     method_options={"losia_options": {"pro": False}}, plugins=[SynapticIntelligencePlugin(si_lambda=1.0)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(IncompatiblePluginError, match="own schedule"):
        CausalLMStrategy(model=model, tokenizer=tokenizer, evaluator=_quiet(),
                         plugins=[LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(optimizer, 1))])


def test_transfer_metrics_fed_with_scores_match_cl_metrics_and_print_through_loggers(monkeypatch, capsys):
    """Scripted scores in place of generation: Avalanche's forgetting/BWT/FWT classes give cl_metrics' values."""
    S = [[0.1, 0.2, 0.3], [0.8, 0.4, 0.35], [0.6, 0.9, 0.6], [0.5, 0.7, 0.95]]
    holder = {}

    def scripted(model, tokenizer, task, **kwargs):
        return TaskEvaluation(task.name, S[holder["strategy"].trained_experiences][TASKS.index(task.name)], [])

    monkeypatch.setattr(strategy_module, "evaluate_task", scripted)
    model, tokenizer, benchmark = _setup(num_train=4)
    text = io.StringIO()
    evaluator = EvaluationPlugin(
        task_score_metrics(), score_forgetting_metrics(experience=True), score_bwt_metrics(experience=True),
        score_forward_transfer_metrics(experience=True), subnet_overlap_metrics(), stability_metrics(),
        loggers=[TextLogger(text), InteractiveLogger()],
    )
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia", method_options={"lr": 1e-2},
                                train_mb_size=4, evaluator=evaluator, eval_loss=False)
    holder["strategy"] = strategy
    # Avalanche's hand-driven loop (eval_every=-1): evaluate before training and after each experience.
    strategy.eval(benchmark.test_stream)
    history = []
    for experience in benchmark.train_stream:
        strategy.train(experience)
        strategy.eval(benchmark.test_stream)
        history.append(strategy.evaluator.get_last_metrics())
    assert strategy.score_matrix() == S
    expected = cl_metrics(S)
    last = history[-1]
    assert last["StreamScoreBWT/eval_phase/test_stream"] == pytest.approx(expected.bwt)
    assert last["StreamScoreForgetting/eval_phase/test_stream"] == pytest.approx(-expected.bwt)
    assert last["StreamScoreForwardTransfer/eval_phase/test_stream"] == pytest.approx(expected.fwt)
    assert last["ExperienceScoreBWT/eval_phase/test_stream/Task000/Exp000"] == pytest.approx(0.5 - 0.8)
    assert last["ExperienceScoreForgetting/eval_phase/test_stream/Task001/Exp001"] == pytest.approx(0.9 - 0.7)
    assert last["StreamTaskScore/eval_phase/test_stream"] == pytest.approx(sum(S[3]) / 3)
    all_metrics = strategy.evaluator.get_all_metrics()
    assert all_metrics["ExperienceScoreForwardTransfer/eval_phase/test_stream/Task002/Exp002"][1] == [
        pytest.approx(S[2][2] - S[0][2])]
    assert history[1]["StreamScoreBWT/eval_phase/test_stream"] == pytest.approx(cl_metrics(S).bwt_curve[1])
    assert "StreamScoreBWT/eval_phase/test_stream" not in history[0]  # undefined after one task
    for name in ("SubnetOverlap", "SubnetOverlapRatio", "SubnetCoverage"):
        assert f"{name}/train_phase/train_stream/Task002/Exp002" in last
    for name in ("StabilitySubspaceLeft", "StabilitySpectralDrift", "StabilityDeltaNorm"):
        assert 0 < last[f"{name}/train_phase/train_stream/Task002/Exp002"] < 1.5
    printed, interactive = text.getvalue(), capsys.readouterr().out
    for output in (printed, interactive):
        assert f"StreamScoreBWT/eval_phase/test_stream = {expected.bwt:.4f}" in output  # -0.2500
        assert "TaskScore/eval_phase/test_stream/Task002/Exp002 = 0.9500" in output
        assert f"StreamScoreForwardTransfer/eval_phase/test_stream = {expected.fwt:.4f}" in output  # 0.2500
        assert "SubnetOverlap/train_phase/train_stream/Task001/Exp001 = " in output
        assert "StabilityDeltaNorm/train_phase/train_stream/Task002/Exp002 = " in output
    overlap = strategy.evaluator.metrics[-2].result()
    assert overlap["tasks"] == TASKS and overlap["num_matrices"] > 0


def test_score_matrix_needs_every_stage_and_from_config_maps_the_run_config():
    model, tokenizer, benchmark = _setup(num_train=4, tasks=TASKS[:2])
    config = RunConfig(model="tiny-llama", methods=("lora",), lr={"lora": 3e-3}, batch_size=1, grad_accum=2,
                       epochs=2, max_steps=3, max_grad_norm=0.5, shuffle=False, seed=7, eval_batch_size=5,
                       device="cpu", method_options={"lora": {"rank": 2}})
    strategy = CausalLMStrategy.from_config(config, model=model, tokenizer=tokenizer, evaluator=_quiet(),
                                            eval_loss=False)
    assert (strategy.method_name, strategy.method.lr, strategy.method.rank) == ("lora", 3e-3, 2)
    assert (strategy.train_mb_size, strategy.grad_accum, strategy.train_epochs, strategy.max_steps) == (1, 2, 2, 3)
    assert (strategy.max_grad_norm, strategy.shuffle, strategy.seed, strategy.eval_mb_size) == (0.5, False, 7, 5)
    with pytest.raises(DataError, match="no scores"):
        strategy.score_matrix()
    strategy.train(benchmark.train_stream[0])
    assert strategy.steps == {"category": 3}  # 2 epochs x 4 micro-batches / grad_accum 2 = 4, capped at 3
    assert len(strategy.losses["category"]) == 3
    strategy.eval(benchmark.test_stream)
    with pytest.raises(DataError, match="stage 0"):
        strategy.score_matrix()


def test_periodic_evaluations_inside_an_experience_are_not_rows_of_the_score_matrix(monkeypatch):
    calls = []

    def scripted(model, tokenizer, task, **kwargs):
        calls.append(task.name)
        return TaskEvaluation(task.name, 0.5, [])

    monkeypatch.setattr(strategy_module, "evaluate_task", scripted)
    model, tokenizer, benchmark = _setup(num_train=4, tasks=TASKS[:2])
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, train_mb_size=4, train_epochs=2, eval_every=1,
                                evaluator=_quiet(), eval_loss=False)
    strategy.train(benchmark.train_stream[0], eval_streams=[benchmark.test_stream])
    assert len(calls) == 2 * 3  # before training, after epoch 1, after epoch 2 (still inside the experience)
    assert sorted(strategy.evaluations["test"]) == [0]
    with pytest.raises(DataError, match="stage 1"):
        strategy.score_matrix()
    strategy.eval(benchmark.test_stream)
    assert strategy.score_matrix() == [[0.5, 0.5], [0.5, 0.5]]


@pytest.mark.parametrize("argument, message", [
    (dict(train_mb_size=0), "train_mb_size = 0"), (dict(train_epochs=0), "train_epochs = 0"),
    (dict(eval_mb_size=0), "eval_mb_size = 0"), (dict(grad_accum=0), "grad_accum = 0"),
    (dict(max_grad_norm=-1.0), "max_grad_norm"), (dict(method="adam"), "unknown method 'adam'"),
    (dict(method="ewc"), "method ewc adds a penalty to the loss and learns after each task, which this strategy"),
])
def test_bad_arguments_name_the_strategy_argument(argument, message):
    model, tokenizer = load_model("tiny-llama")
    with pytest.raises(LosiaError, match=message):  # ConfigError, UnknownNameError for the method
        CausalLMStrategy(model=model, tokenizer=tokenizer, evaluator=None, **argument)
