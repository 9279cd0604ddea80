"""Every losia-cl plugin metric reaches a CSV file (MetricsCSVLogger) and TensorBoard, read back from disk."""

from __future__ import annotations

import csv

import pytest
import torch

pytest.importorskip("avalanche")

from avalanche.logging import CSVLogger, TensorboardLogger  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

import losia_cl.avalanche.strategy as strategy_module  # noqa: E402
from losia_cl.avalanche import (  # noqa: E402
    CausalLMStrategy,
    MetricsCSVLogger,
    as_benchmark,
    score_bwt_metrics,
    stability_metrics,
    subnet_overlap_metrics,
    task_score_metrics,
)
from losia_cl.avalanche.loggers import parse_metric_name  # noqa: E402
from losia_cl.models import load_model  # noqa: E402
from losia_cl.streams import load_stream  # noqa: E402
from losia_cl.trainer.evaluate import TaskEvaluation  # noqa: E402

TASKS = ["category", "position"]
#: Scripted task scores (row s: after s experiences), so that the logged values are known exactly.
S = [[0.125, 0.25], [0.875, 0.375], [0.5, 0.625]]


def test_parse_metric_name():
    assert parse_metric_name("TaskScore/eval_phase/test_stream/Task001/Exp002") == {
        "metric": "TaskScore", "phase": "eval", "stream": "test", "task": "1", "experience": "2"}
    assert parse_metric_name("StreamTaskScore/eval_phase/test_stream")["experience"] == ""


def test_task_score_overlap_and_stability_reach_csv_and_tensorboard(tmp_path, monkeypatch):
    holder = {}

    def scripted(model, tokenizer, task, **kwargs):
        return TaskEvaluation(task.name, S[holder["strategy"].trained_experiences][TASKS.index(task.name)], [])

    monkeypatch.setattr(strategy_module, "evaluate_task", scripted)
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-llama")
    benchmark = as_benchmark(load_stream("demo", num_train=4, num_test=2, seed=0, tasks=TASKS), tokenizer,
                             max_length=48)
    metrics_csv = MetricsCSVLogger(tmp_path / "csv")
    evaluator = EvaluationPlugin(
        task_score_metrics(), score_bwt_metrics(), subnet_overlap_metrics(), stability_metrics(),
        loggers=[metrics_csv, TensorboardLogger(tmp_path / "tb"), CSVLogger(tmp_path / "avalanche-csv")],
    )
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia", method_options={"lr": 1e-2},
                                train_mb_size=4, evaluator=evaluator, eval_loss=False, eval_every=0)
    holder["strategy"] = strategy
    strategy.train(benchmark.train_stream, eval_streams=[benchmark.test_stream])
    assert strategy.score_matrix() == S
    metrics_csv.close()

    with (tmp_path / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    scores = [(int(r["experience"]), float(r["value"])) for r in rows if r["metric"] == "TaskScore"]
    assert scores == [(j, S[i][j]) for i in range(3) for j in range(2)]  # every stage, in order
    assert all(r["phase"] == "eval" and r["stream"] == "test" for r in rows if r["metric"] == "TaskScore")
    bwt = [float(r["value"]) for r in rows if r["metric"] == "StreamScoreBWT"]
    assert bwt == [pytest.approx(S[2][0] - S[1][0])]
    by_metric = {r["metric"] for r in rows}
    assert {"SubnetOverlap", "SubnetOverlapRatio", "SubnetCoverage", "StabilityDeltaNorm",
            "StabilitySubspaceLeft", "StreamTaskScore"} <= by_metric
    coverage = [float(r["value"]) for r in rows if r["metric"] == "SubnetCoverage"]
    assert len(coverage) == 2 and 0 < coverage[0] <= coverage[1] <= 1  # cumulative: never shrinks

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    first = [e.value for e in events.Scalars("TaskScore/eval_phase/test_stream/Task000/Exp000")]
    assert first == [pytest.approx(S[i][0]) for i in range(3)]
    assert "SubnetCoverage/train_phase/train_stream/Task001/Exp001" in tags
    assert "StabilityDeltaNorm/train_phase/train_stream/Task001/Exp001" in tags

    # Avalanche's own CSVLogger keeps its fixed columns only: the reason MetricsCSVLogger exists
    avalanche_eval = (tmp_path / "avalanche-csv" / "eval_results.csv").read_text()
    assert avalanche_eval.splitlines()[0] == "eval_exp,training_exp,eval_accuracy,eval_loss,forgetting"
    assert "0.8750" not in avalanche_eval
