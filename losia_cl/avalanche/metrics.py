"""Avalanche plugin metrics for text tasks: task scores, forgetting / BWT / forward transfer, overlap, stability.

* :func:`task_score_metrics`: the task's scorer on greedy generations (what ``losia-cl run``
  puts in its score matrix), per experience and averaged over the stream;
* :func:`score_forgetting_metrics`, :func:`score_bwt_metrics`,
  :func:`score_forward_transfer_metrics`: Avalanche's own forgetting, BWT and forward-transfer
  metric classes, fed with those scores instead of classification accuracy;
* :func:`subnet_overlap_metrics`: :class:`~losia_cl.metrics.SubnetOverlapTracker` over the
  subnets the method trains (LoSiA); :func:`stability_metrics`:
  :class:`~losia_cl.metrics.StabilityTracker` on the target weights after every experience.

All emit plain floats through the evaluation plugin, so the interactive, text and TensorBoard
loggers, and :class:`~losia_cl.avalanche.MetricsCSVLogger`, record them (Avalanche's ``CSVLogger``
keeps a fixed set of accuracy/loss columns and records none of them).  They read what :class:`~losia_cl.avalanche.CausalLMStrategy`
computes (``last_evaluation``, ``new_subnets``, ``method``).
"""

from __future__ import annotations

from typing import Any

from avalanche.evaluation.metric_definitions import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import get_metric_name, phase_and_task, stream_type
from avalanche.evaluation.metrics import Mean, loss_metrics
from avalanche.evaluation.metrics.forgetting_bwt import (
    ExperienceBWT,
    ExperienceForgetting,
    GenericExperienceForgetting,
    GenericStreamForgetting,
    StreamBWT,
    StreamForgetting,
)
from avalanche.evaluation.metrics.forward_transfer import (
    ExperienceForwardTransfer,
    GenericExperienceForwardTransfer,
    GenericStreamForwardTransfer,
    StreamForwardTransfer,
)
from avalanche.logging import InteractiveLogger
from avalanche.training.plugins import EvaluationPlugin

from losia_cl.errors import ConfigError
from losia_cl.methods import SubnetMethod

__all__ = [
    "ExperienceScoreBWT",
    "ExperienceScoreForgetting",
    "ExperienceScoreForwardTransfer",
    "ExperienceTaskScore",
    "StabilityMetric",
    "StreamScoreBWT",
    "StreamScoreForgetting",
    "StreamScoreForwardTransfer",
    "StreamTaskScore",
    "SubnetOverlapMetric",
    "TaskScore",
    "default_lm_evaluator",
    "score_bwt_metrics",
    "score_forgetting_metrics",
    "score_forward_transfer_metrics",
    "stability_metrics",
    "subnet_overlap_metrics",
    "task_score_metrics",
]


def _current_score(strategy: Any) -> float | None:
    """The score of the experience just evaluated, or None when the strategy did not generate."""
    if not hasattr(strategy, "last_evaluation"):
        raise ConfigError(
            f"task-score metrics need CausalLMStrategy (it scores generations); got {type(strategy).__name__}"
        )
    evaluation = strategy.last_evaluation
    return None if evaluation is None else float(evaluation.score)


def _stream_name(strategy: Any) -> str:
    return strategy.experience.origin_stream.name


class TaskScore:
    """Standalone Avalanche metric: the last task score it was given (0–1)."""

    def __init__(self) -> None:
        self._value: float | None = None

    def update(self, value: float | None) -> None:
        self._value = None if value is None else float(value)

    def result(self) -> float | None:
        return self._value

    def reset(self) -> None:
        self._value = None


class ExperienceTaskScore(PluginMetric[float]):
    """The task's score on the experience just evaluated (greedy generation, the task's metric)."""

    def __init__(self) -> None:
        super().__init__()
        self._score = TaskScore()

    def result(self) -> float | None:
        return self._score.result()

    def reset(self) -> None:
        self._score.reset()

    def before_eval_exp(self, strategy: Any) -> None:
        self.reset()

    def after_eval_exp(self, strategy: Any) -> list[MetricValue] | None:
        self._score.update(_current_score(strategy))
        if self.result() is None:
            return None
        name = get_metric_name(self, strategy, add_experience=True)
        return [MetricValue(self, name, self.result(), strategy.clock.train_iterations)]

    def __str__(self) -> str:
        return "TaskScore"


class StreamTaskScore(PluginMetric[float]):
    """The mean task score over the experiences of an evaluation stream."""

    def __init__(self) -> None:
        super().__init__()
        self._mean = Mean()

    def result(self) -> float:
        return self._mean.result()

    def reset(self) -> None:
        self._mean.reset()

    def before_eval(self, strategy: Any) -> None:
        self.reset()

    def after_eval_exp(self, strategy: Any) -> None:
        score = _current_score(strategy)
        if score is not None:
            self._mean.update(score, weight=1)

    def after_eval(self, strategy: Any) -> list[MetricValue] | None:
        if strategy.last_evaluation is None:
            return None
        phase, _ = phase_and_task(strategy)
        name = f"{self}/{phase}_phase/{stream_type(strategy.experience)}_stream"
        return [MetricValue(self, name, self.result(), strategy.clock.train_iterations)]

    def __str__(self) -> str:
        return "StreamTaskScore"


def task_score_metrics(*, experience: bool = True, stream: bool = True) -> list[PluginMetric]:
    """Task-score plugin metrics: per evaluation experience and/or the stream mean."""
    return ([ExperienceTaskScore()] if experience else []) + ([StreamTaskScore()] if stream else [])


# ---------------------------------------------------------------- Avalanche's transfer metrics fed with scores
class _FedWithScores:
    """Feeds Avalanche's forgetting / BWT / forward-transfer classes with task scores of one stream.

    Avalanche's versions update a ``TaskAwareAccuracy`` from ``mb_output``/``mb_y`` on every
    eval iteration; here the value of an experience is its generation score, and experiences of
    other streams (e.g. an evaluation on ``train_stream``) are left out.
    """

    stream = "test"

    def metric_update(self, strategy: Any) -> None:
        pass

    def metric_result(self, strategy: Any) -> float | None:
        return self._current_metric.result()

    def before_eval(self, strategy: Any) -> Any:
        self._seen = False
        return super().before_eval(strategy)

    def after_eval_iteration(self, strategy: Any) -> None:
        pass  # the score is known only after generation (after_eval_exp)

    def after_eval_exp(self, strategy: Any) -> Any:
        if _stream_name(strategy) != self.stream:
            return None
        score = _current_score(strategy)
        if score is None:
            return None
        self._current_metric.update(score)
        self._seen = True
        self.eval_exp_id = strategy.experience.current_experience
        return super().after_eval_exp(strategy)


class _StreamLevel:
    """Emit the stream value only when an experience of the stream had a defined value in this evaluation."""

    def after_eval(self, strategy: Any) -> Any:
        result = super().after_eval(strategy)
        return result if getattr(self, "_seen", False) and self.stream_forgetting.weight > 0 else None


class _InitialAtStageZero:
    """Forward transfer's initial scores are those of evaluations before any training.

    Avalanche takes the first evaluation ever (and asserts ``eval_every > -1`` so that one runs
    before training); here the strategy's stage decides, so ``strategy.eval`` called by hand works.
    """

    def before_eval(self, strategy: Any) -> Any:
        self.at_init = getattr(strategy, "trained_experiences", 0) == 0
        return super().before_eval(strategy)


class ExperienceScoreForgetting(_FedWithScores, ExperienceForgetting):
    """Avalanche's ExperienceForgetting on task scores: score after training on the experience minus the last."""

    def __init__(self, stream: str = "test") -> None:
        GenericExperienceForgetting.__init__(self, TaskScore())
        self.stream = stream

    def __str__(self) -> str:
        return "ExperienceScoreForgetting"


class StreamScoreForgetting(_StreamLevel, _FedWithScores, StreamForgetting):
    """Avalanche's StreamForgetting on task scores, averaged over the experiences trained before the last."""

    def __init__(self, stream: str = "test") -> None:
        GenericStreamForgetting.__init__(self, TaskScore())
        self.stream = stream

    def __str__(self) -> str:
        return "StreamScoreForgetting"


class ExperienceScoreBWT(_FedWithScores, ExperienceBWT):
    """Avalanche's ExperienceBWT on task scores (last score minus the score right after training on it)."""

    def __init__(self, stream: str = "test") -> None:
        GenericExperienceForgetting.__init__(self, TaskScore())
        self.stream = stream

    def __str__(self) -> str:
        return "ExperienceScoreBWT"


class StreamScoreBWT(_StreamLevel, _FedWithScores, StreamBWT):
    """Avalanche's StreamBWT on task scores: ``BWT_i`` of :func:`losia_cl.metrics.cl_metrics`."""

    def __init__(self, stream: str = "test") -> None:
        GenericStreamForgetting.__init__(self, TaskScore())
        self.stream = stream

    def __str__(self) -> str:
        return "StreamScoreBWT"


class ExperienceScoreForwardTransfer(_InitialAtStageZero, _FedWithScores, ExperienceForwardTransfer):
    """Avalanche's ExperienceForwardTransfer on task scores: score after the previous experience minus the base."""

    def __init__(self, stream: str = "test") -> None:
        GenericExperienceForwardTransfer.__init__(self, TaskScore())
        self.stream = stream

    def after_eval(self, strategy: Any) -> Any:
        self.eval_exp_id = -1
        return PluginMetric.after_eval(self, strategy)

    def __str__(self) -> str:
        return "ExperienceScoreForwardTransfer"


class StreamScoreForwardTransfer(_InitialAtStageZero, _FedWithScores, StreamForwardTransfer):
    """Avalanche's StreamForwardTransfer on task scores: the FWT of :func:`losia_cl.metrics.cl_metrics`."""

    def __init__(self, stream: str = "test") -> None:
        GenericStreamForwardTransfer.__init__(self, TaskScore())
        self.stream = stream

    def after_eval(self, strategy: Any) -> Any:
        self.eval_exp_id = -1
        if not getattr(self, "_seen", False) or self.at_init or not self.stream_forward_transfer.weight:
            return None
        return self._package_result(strategy)

    def __str__(self) -> str:
        return "StreamScoreForwardTransfer"


def score_forgetting_metrics(*, experience: bool = False, stream: bool = True, on: str = "test") -> list:
    """Forgetting of task scores on stream ``on`` (Avalanche's definition: first score after training minus last)."""
    return ([ExperienceScoreForgetting(on)] if experience else []) + ([StreamScoreForgetting(on)] if stream else [])


def score_bwt_metrics(*, experience: bool = False, stream: bool = True, on: str = "test") -> list:
    """Backward transfer of task scores on stream ``on``."""
    return ([ExperienceScoreBWT(on)] if experience else []) + ([StreamScoreBWT(on)] if stream else [])


def score_forward_transfer_metrics(*, experience: bool = False, stream: bool = True, on: str = "test") -> list:
    """Forward transfer of task scores on stream ``on`` (needs an evaluation before training)."""
    return ([ExperienceScoreForwardTransfer(on)] if experience else []) + (
        [StreamScoreForwardTransfer(on)] if stream else [])


# ---------------------------------------------------------------- subnet overlap and stability
def _task_name(strategy: Any) -> str:
    task = getattr(strategy.experience, "text_task", None)
    return task.name if task is not None else f"experience {strategy.experience.current_experience}"


def _method(strategy: Any) -> Any:
    method = getattr(strategy, "method", None)
    if method is None:
        raise ConfigError(f"overlap and stability metrics need CausalLMStrategy; got {type(strategy).__name__}")
    return method


class SubnetOverlapMetric(PluginMetric[dict]):
    """Overlap of the subnets trained on different experiences (:class:`~losia_cl.metrics.SubnetOverlapTracker`).

    After each training experience it emits ``SubnetOverlap`` (mean coverage Jaccard with every
    earlier experience), ``SubnetOverlapRatio`` (the same over its chance level) and
    ``SubnetCoverage`` (fraction of the target entries trained so far).  Methods without
    subnets (LoRA, full) emit nothing.  :meth:`result` is the tracker's full summary.
    """

    def __init__(self) -> None:
        super().__init__()
        from losia_cl.metrics import SubnetOverlapTracker

        self.tracker = SubnetOverlapTracker()
        self._layout: dict[str, tuple[tuple[int, int], int]] = {}
        self._task = ""

    def result(self) -> dict | None:
        return self.tracker.summary() if self.tracker.matrix_names else None

    def reset(self) -> None:
        pass  # the tracker spans the whole stream

    def _record(self, strategy: Any) -> None:
        subnets = strategy.new_subnets
        if subnets:
            self.tracker.record(self._task, subnets, shapes={n: self._layout[n][0] for n in subnets},
                                layers={n: self._layout[n][1] for n in subnets})

    def before_training_exp(self, strategy: Any) -> None:
        method = _method(strategy)
        self._layout = method.subnet_layout(strategy.optimizer) if isinstance(method, SubnetMethod) else {}
        self._task = self.tracker.start_task(_task_name(strategy))
        self._record(strategy)

    def after_update(self, strategy: Any) -> None:
        self._record(strategy)

    def after_training_exp(self, strategy: Any) -> list[MetricValue] | None:
        if not self._layout or not self.tracker.matrix_names:
            return None
        summary = self.tracker.summary(per_matrix=False)
        index = summary["tasks"].index(self._task)
        x = strategy.clock.train_iterations
        values = []
        earlier = [summary["coverage_jaccard"][a][index] for a in range(index)]
        ratios = [summary["coverage_jaccard_ratio"][a][index] for a in range(index)]
        for label, group in (("SubnetOverlap", earlier), ("SubnetOverlapRatio", ratios)):
            defined = [v for v in group if v is not None]
            if defined:
                values.append(MetricValue(self, get_metric_name(label, strategy, add_experience=True),
                                          sum(defined) / len(defined), x))
        coverage = summary["cumulative_coverage"][index]
        if coverage is not None:
            values.append(MetricValue(self, get_metric_name("SubnetCoverage", strategy, add_experience=True),
                                      float(coverage), x))
        return values

    def __str__(self) -> str:
        return "SubnetOverlap"


#: StabilityTracker mean measures emitted after each experience, by metric name.
STABILITY_VALUES = {
    "StabilitySubspaceLeft": "subspace_left_base",
    "StabilitySubspaceRight": "subspace_right_base",
    "StabilitySpectralDrift": "spectral_drift_base",
    "StabilityDeltaNorm": "delta_rel_norm",
    "StabilityDeltaEffectiveRank": "delta_effective_rank",
}


class StabilityMetric(PluginMetric[dict]):
    """Weight dimensional stability of the target matrices (:class:`~losia_cl.metrics.StabilityTracker`).

    The base weights are snapshotted when training first starts; after each training
    experience (after ``method.after_task``) the effective weights are measured against them and
    the means over matrices of :data:`STABILITY_VALUES` are emitted.  :meth:`result` is the
    tracker's summary.
    """

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        self.config = config
        self.tracker = None
        self._base: dict[str, Any] = {}

    def result(self) -> dict | None:
        return None if self.tracker is None else self.tracker.summary()

    def reset(self) -> None:
        pass

    def before_training(self, strategy: Any) -> None:
        if self.tracker is not None:
            return
        from losia_cl.metrics import StabilityTracker

        records = _method(strategy).target_weights(strategy.model)
        self._base = {r.name: r.weight.detach().clone() for r in records}
        self.tracker = StabilityTracker(self.config, base=self._base, layers={r.name: r.layer for r in records})

    def after_training_exp(self, strategy: Any) -> list[MetricValue] | None:
        if self.tracker is None or not self._base:
            return None
        weights = {r.name: r.weight for r in _method(strategy).target_weights(strategy.model)}
        stage = f"after {_task_name(strategy)}"
        if stage in self.tracker.stages:  # the same experience trained again
            stage = f"{stage} ({len(self.tracker.stages)})"
        self.tracker.measure(stage, weights, base=self._base)
        mean = self.tracker.summary(per_matrix=False)["stages"][-1]["mean"]
        x = strategy.clock.train_iterations
        return [MetricValue(self, get_metric_name(name, strategy, add_experience=True), float(mean[key]), x)
                for name, key in STABILITY_VALUES.items() if mean.get(key) is not None]

    def __str__(self) -> str:
        return "Stability"


def subnet_overlap_metrics() -> list[PluginMetric]:
    """The subnet-overlap plugin metric (emits only for methods with subnets: LoSiA, LoSiA-Pro)."""
    return [SubnetOverlapMetric()]


def stability_metrics(config: Any = None) -> list[PluginMetric]:
    """The weight-stability plugin metric (``config``: a :class:`~losia_cl.metrics.StabilityConfig`)."""
    return [StabilityMetric(config)]


def default_lm_evaluator() -> EvaluationPlugin:
    """CausalLMStrategy's default evaluator: task scores, answer-token loss, the interactive logger."""
    return EvaluationPlugin(
        task_score_metrics(experience=True, stream=True),
        loss_metrics(epoch=True, experience=True, stream=True),
        loggers=[InteractiveLogger()],
    )
