"""TensorBoard event files of a run (``losia-cl run --tensorboard``): one folder per method.

``<out>/tensorboard/<method>/`` receives, through ``torch.utils.tensorboard.SummaryWriter``:

* ``train/loss``: the loss of every optimizer step (the value ``results.json`` lists under ``losses``);
* ``train/lr``: the learning rate the step applied, as the trainer sums it into ``lr_mass``: the mean over
  the entries the step updates (a LoSiA matrix counts its subnet at its re-warmed rate, 0 while the
  first subnets are scored; see :func:`losia_cl.optim.lr.applied_lr`);
* ``score/<task>``: every task's score after each task (and of the base model at step 0);
* ``subnet/...``: for methods with subnets, after each task, the overlap of its subnets with the
  previous task's and the coverage so far (means over the target matrices, as in ``subnet_overlap``).

The step axis counts optimizer steps across tasks: a training step is logged at the number of steps
done before it, a task's scores at the number of steps done through that task (a run continued with
``--from`` counts the earlier run's tasks first, and logs the score rows it carries).  A resumed method
opens its folder with ``purge_step`` at its checkpoint's step, so TensorBoard hides what the
interrupted process logged after that checkpoint and shows every step once.  Only the main process
writes.  The module imports ``torch.utils.tensorboard`` (which needs the ``tensorboard`` package) only
when a folder is opened.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The folder of the event files inside the run folder (one subfolder per method).
TENSORBOARD_DIR = "tensorboard"
#: The extra that installs the writer's dependency.
EXTRA = "losia-cl[tensorboard]"


def tensorboard_problem() -> str | None:
    """Why ``--tensorboard`` cannot work here (one line), or None when the ``tensorboard`` package is installed."""
    if importlib.util.find_spec("tensorboard") is None:
        return f"needs the tensorboard package: pip install '{EXTRA}'"
    return None


class TensorBoardLog:
    """The event file of one method, or nothing (``folder=None``: every call does nothing).

    ``steps_per_task`` places every task's steps on one axis; ``purge_step`` is the global step from
    which events an earlier, interrupted process wrote are hidden (0 for a fresh start).
    """

    def __init__(self, folder: Path | None, tasks: Sequence[str], steps_per_task: Sequence[int],
                 purge_step: int = 0) -> None:
        self.tasks = list(tasks)
        self.offsets = [sum(steps_per_task[:i]) for i in range(len(steps_per_task) + 1)]
        self._writer = None
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
            logger.info("TensorBoard events: %s", folder)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def global_step(self, task_index: int, step: int) -> int:
        """Optimizer steps done before step ``step`` of task ``task_index`` (every earlier task's steps counted)."""
        return self.offsets[task_index] + step

    def train_step(self, task_index: int, step: int, loss: float, lr: float) -> None:
        if self._writer is None:
            return
        at = self.global_step(task_index, step)
        self._writer.add_scalar("train/loss", loss, at)
        self._writer.add_scalar("train/lr", lr, at)

    def scores(self, stage: int, row: Sequence[float | None]) -> None:
        """Every task's score after ``stage`` tasks (0: the base model; None: not measured, left out)."""
        if self._writer is None:
            return
        for task, score in zip(self.tasks, row):
            if score is not None:
                self._writer.add_scalar(f"score/{task}", score, self.offsets[stage])

    def rows(self, scores: Sequence[Sequence[float | None]]) -> None:
        """The rows of a score matrix so far: row ``i`` after ``i`` tasks."""
        for stage, row in enumerate(scores):
            self.scores(stage, row)

    def subnet_overlap(self, stage: int, summary: dict[str, Any]) -> None:
        """The subnets after ``stage`` tasks, from a ``SubnetOverlapTracker.summary()``: ``subnet/jaccard_prev``
        (coverage Jaccard with the previous task), ``subnet/jaccard_ratio_prev`` (the same over chance),
        ``subnet/task_coverage`` and ``subnet/cumulative_coverage`` (covered fractions)."""
        if self._writer is None:
            return
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
                self._writer.add_scalar(f"subnet/{name}", value, self.offsets[stage])

    def after_task(self, stage: int, row: Sequence[float], overlap: Any = None) -> None:
        """The scores after ``stage`` tasks, and the subnets of a ``SubnetOverlapTracker`` (None: no subnets)."""
        if self._writer is None:
            return
        self.scores(stage, row)
        if overlap is not None:
            self.subnet_overlap(stage, overlap.summary(per_matrix=False))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def method_log(out_dir: Path, method: str, enabled: bool, tasks: Sequence[str], steps_per_task: Sequence[int],
               resume_at: tuple[int, int] | None = None) -> TensorBoardLog:
    """The log of ``method`` under ``out_dir/tensorboard/<method>/`` (inert unless ``enabled``); ``resume_at``
    is a checkpoint's (task index, step), from which the events of the interrupted process are purged."""
    if not enabled:
        return TensorBoardLog(None, tasks, steps_per_task)
    from losia_cl.trainer.files import inside

    purge = 0 if resume_at is None else sum(steps_per_task[:resume_at[0]]) + resume_at[1]
    return TensorBoardLog(inside(out_dir, TENSORBOARD_DIR, method), tasks, steps_per_task, purge_step=purge)
