"""Group the finished methods of several seeds of one run configuration."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from losia_cl.errors import DataError, brief

from .loading import MethodResult, RunData
from .stats import Stat, summarize

logger = logging.getLogger(__name__)

__all__ = ["DETAIL_TASK_LIMIT", "MethodRuns", "ReportRuns", "group_seeds", "check_same_setup", "mean_nested",
           "summary_view", "task_curves"]

#: streams with more tasks than this get summary views: heatmaps without numbers in the cells, per-task and
#: per-stage tables instead of full (T+1) × T matrices, one panel per quantity instead of one per task.
DETAIL_TASK_LIMIT = 50


def summary_view(num_tasks: int) -> bool:
    """Whether a stream of ``num_tasks`` tasks is reported with summary views (more than :data:`DETAIL_TASK_LIMIT`)."""
    return num_tasks > DETAIL_TASK_LIMIT


def task_curves(cells: list[list[Stat]]) -> list[list[tuple[float | None, float | None]]]:
    """Per task ``j``, its ``(mean, half width)`` at every stage ``0..T`` of a ``(T+1) × T`` matrix of stats."""
    return [[(row[j].mean, row[j].half_width) for row in cells] for j in range(len(cells[0]))]


@dataclass(frozen=True)
class MethodRuns:
    """One method's results over the seeds that finished it (one :class:`MethodResult` per seed)."""

    method: str
    results: tuple[MethodResult, ...]
    seeds: tuple[int | None, ...]

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.results[0].tasks

    def stat(self, key: str) -> Stat:
        """Mean ± CI over seeds of a headline value (see :meth:`MethodResult.metric`)."""
        return summarize([r.metric(key) for r in self.results])

    def score_stats(self) -> list[list[Stat]]:
        """``(T+1) × T`` cells of the score matrix over seeds."""
        rows, cols = self.results[0].scores.shape
        return [[self.cell_stat(i, j) for j in range(cols)] for i in range(rows)]

    def cell_stat(self, row: int, col: int) -> Stat:
        """One cell ``S[row, col]`` of the score matrix over seeds."""
        return summarize([float(r.scores[row, col]) for r in self.results])

    def mean_scores(self) -> np.ndarray:
        return np.mean(np.stack([r.scores for r in self.results]), axis=0)

    def curve_stats(self, key: str) -> list[Stat]:
        """Per-stage curve (``average_performance_curve``, ``bwt_curve``, ``forgetting_curve``) over seeds."""
        curves = [r.metrics[key] for r in self.results]
        return [summarize([c[i] for c in curves]) for i in range(len(curves[0]))]

    def loglik_stats(self) -> list[list[Stat]] | None:
        """``(T+1) × T`` cells of the graded ``loglik_scores`` over the seeds that have them (None if none)."""
        matrices = [r.loglik_scores for r in self.results if r.loglik_scores is not None]
        if not matrices:
            return None
        rows, cols = matrices[0].shape
        return [[summarize([float(m[i, j]) for m in matrices]) for j in range(cols)] for i in range(rows)]

    def retention_stats(self, key: str) -> list[Stat | None] | None:
        """The general probe's ``kl`` or ``kept`` per stage (base first) over the seeds that measured it (None for
        a stage no seed probed; None for all if never measured)."""
        series = [r.retention[key] for r in self.results if r.retention is not None]
        if not series:
            return None
        stages = []
        for i in range(len(series[0])):
            values = [s[i] for s in series if s[i] is not None]
            stages.append(summarize(values) if values else None)
        return stages

    def overlaps(self) -> list[dict[str, Any]]:
        return [r.subnet_overlap for r in self.results if r.subnet_overlap is not None]

    def stabilities(self) -> list[dict[str, Any]]:
        return [r.stability for r in self.results if r.stability is not None]


@dataclass(frozen=True)
class ReportRuns:
    """What every report section reads: the run directories (seeds of one setup) and their methods.

    Attributes:
        runs: the validated run directories, in the order given.
        groups: each finished method (in order of first appearance) with its results over the seeds.
    """

    runs: tuple[RunData, ...]
    groups: dict[str, MethodRuns]

    @classmethod
    def of(cls, runs: Sequence[RunData]) -> ReportRuns:
        """Group ``runs`` (already checked to share one setup) by method."""
        return cls(tuple(runs), group_seeds(runs))

    @property
    def first(self) -> RunData:
        return self.runs[0]

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.first.tasks

    @property
    def summary_view(self) -> bool:
        """More tasks than :data:`DETAIL_TASK_LIMIT`: sections show summaries instead of per-cell detail."""
        return summary_view(len(self.tasks))


def check_same_setup(runs: Sequence[RunData]) -> None:
    """Seeds of one report must share stream, tasks and model; raises DataError naming the difference."""
    first = runs[0]
    for run in runs[1:]:
        for what, a, b in (
            ("stream", first.stream, run.stream),
            ("tasks", list(first.tasks), list(run.tasks)),
            ("model", first.model, run.model),
        ):
            if a != b:
                raise DataError(
                    f"{run.path / 'run.json'}: {what} {brief(b)} differs from {brief(a)} in {first.path / 'run.json'}; "
                    "a report aggregates seeds of one setup — use `losia-cl compare` for different runs"
                )
    seeds = [r.seed for r in runs]
    if len(set(seeds)) != len(seeds):
        logger.warning("runs share a seed (%s); their results are averaged as if independent", seeds)


def group_seeds(runs: Sequence[RunData]) -> dict[str, MethodRuns]:
    """Methods (in order of first appearance) with their results over ``runs``."""
    order: list[str] = []
    found: dict[str, list[tuple[int | None, MethodResult]]] = {}
    for run in runs:
        for method, result in run.results.items():
            if method not in found:
                order.append(method)
                found[method] = []
            found[method].append((result.seed if result.seed is not None else run.seed, result))
    return {
        m: MethodRuns(m, tuple(r for _, r in found[m]), tuple(s for s, _ in found[m])) for m in order
    }


def mean_nested(values: Sequence[Any]) -> Any:
    """Element-wise mean of equally shaped nested lists of numbers/``None`` (``None`` entries left out)."""
    first = values[0]
    if isinstance(first, list):
        if any(not isinstance(v, list) or len(v) != len(first) for v in values):
            raise DataError("cannot average summaries of different shapes over seeds")
        return [mean_nested([v[i] for v in values]) for i in range(len(first))]
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return math.fsum(vals) / len(vals) if vals else None
