"""The scalars a run logs while it trains (``--tensorboard``, ``--wandb``): one step axis, any number of writers.

The trainer feeds one :class:`MetricsLog` per method; it places every value on the step axis and hands it to
each :class:`ScalarWriter` it holds (none: every call does nothing).  The tags:

* ``train/loss``: the loss of every optimizer step (the value ``results.json`` lists under ``losses``);
* ``train/lr``: the learning rate the step applied, as the trainer sums it into ``lr_mass``: the mean over
  the entries the step updates (a LoSiA matrix counts its subnet at its re-warmed rate, 0 while the
  first subnets are scored; see :func:`losia_cl.optim.lr.applied_lr`);
* ``score/<task>``: every task's score after each task (and of the base model at step 0);
* ``subnet/...``: for methods with subnets, after each task, the overlap of its subnets with the
  previous task's and the coverage so far (means over the target matrices, as in ``subnet_overlap``).

The step axis counts optimizer steps across tasks: a training step is logged at the number of steps
done before it, a task's scores at the number of steps done through that task (a run continued with
``--from`` counts the earlier run's tasks first, and logs the score rows it carries).  Only the main
process logs.  The writers' packages are imported only when a writer is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ScalarWriter(Protocol):
    """Where scalars go: ``torch.utils.tensorboard.SummaryWriter`` has this shape."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class MetricsLog:
    """The scalars of one method, written to every writer of ``writers`` (none: every call does nothing).

    ``steps_per_task`` places every task's steps on one axis.
    """

    def __init__(self, tasks: Sequence[str], steps_per_task: Sequence[int],
                 writers: Sequence[ScalarWriter] = ()) -> None:
        self.tasks = list(tasks)
        self.offsets = [sum(steps_per_task[:i]) for i in range(len(steps_per_task) + 1)]
        self._writers = list(writers)

    @property
    def enabled(self) -> bool:
        return bool(self._writers)

    def global_step(self, task_index: int, step: int) -> int:
        """Optimizer steps done before step ``step`` of task ``task_index`` (every earlier task's steps counted)."""
        return self.offsets[task_index] + step

    def _scalar(self, tag: str, value: float, step: int) -> None:
        for writer in self._writers:
            writer.add_scalar(tag, value, step)

    def train_step(self, task_index: int, step: int, loss: float, lr: float) -> None:
        if not self._writers:
            return
        at = self.global_step(task_index, step)
        self._scalar("train/loss", loss, at)
        self._scalar("train/lr", lr, at)

    def scores(self, stage: int, row: Sequence[float | None]) -> None:
        """Every task's score after ``stage`` tasks (0: the base model; None: not measured, left out)."""
        for task, score in zip(self.tasks, row):
            if score is not None:
                self._scalar(f"score/{task}", score, self.offsets[stage])

    def rows(self, scores: Sequence[Sequence[float | None]]) -> None:
        """The rows of a score matrix so far: row ``i`` after ``i`` tasks."""
        for stage, row in enumerate(scores):
            self.scores(stage, row)

    def subnet_overlap(self, stage: int, summary: dict[str, Any]) -> None:
        """The subnets after ``stage`` tasks, from a ``SubnetOverlapTracker.summary()``: ``subnet/jaccard_prev``
        (coverage Jaccard with the previous task), ``subnet/jaccard_ratio_prev`` (the same over chance),
        ``subnet/task_coverage`` and ``subnet/cumulative_coverage`` (covered fractions)."""
        index = stage - 1
        if index >= len(summary["tasks"]):
            return
        values = {"task_coverage": summary["task_coverage"][index],
                  "cumulative_coverage": summary["cumulative_coverage"][index]}
        if index > 0:
            values["jaccard_prev"] = summary["coverage_jaccard"][index - 1][index]
            values["jaccard_ratio_prev"] = summary["coverage_jaccard_ratio"][index - 1][index]
        for name, value in values.items():
            if value is not None:
                self._scalar(f"subnet/{name}", value, self.offsets[stage])

    def after_task(self, stage: int, row: Sequence[float], overlap: Any = None) -> None:
        """The scores after ``stage`` tasks, and the subnets of a ``SubnetOverlapTracker`` (None: no subnets)."""
        if not self._writers:
            return
        self.scores(stage, row)
        if overlap is not None:
            self.subnet_overlap(stage, overlap.summary(per_matrix=False))

    def flush(self) -> None:
        for writer in self._writers:
            writer.flush()

    def close(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.close()


def method_log(out_dir: Path, method: str, tasks: Sequence[str], steps_per_task: Sequence[int], *,
               tensorboard: bool = False, wandb_config: dict[str, Any] | None = None,
               resume_at: tuple[int, int] | None = None) -> MetricsLog:
    """The log of ``method``: TensorBoard events under ``out_dir/tensorboard/<method>/`` if ``tensorboard``, a
    W&B run if ``wandb_config`` (the run's configuration, recorded with it) is given; ``resume_at`` is a
    checkpoint's (task index, step), from which the events of the interrupted process are purged."""
    writers: list[ScalarWriter] = []
    if tensorboard:
        from losia_cl.trainer.tensorboard_log import tensorboard_writer

        purge = 0 if resume_at is None else sum(steps_per_task[:resume_at[0]]) + resume_at[1]
        writers.append(tensorboard_writer(out_dir, method, purge))
    if wandb_config is not None:
        from losia_cl.trainer.wandb_log import WandbWriter

        writers.append(WandbWriter.open(out_dir, method, wandb_config))
    return MetricsLog(tasks, steps_per_task, writers)
