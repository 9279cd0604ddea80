"""What a run may add to plain training: a regularizing method's penalty and after-task learning, and replay.

:class:`TrainingExtras` is the trainer's one handle on both; with a method that does not regularize
(:class:`~losia_cl.methods.RegularizedMethod`) and no replay, every call is a no-op, so such runs train
exactly as without it.  Its tensors travel in the checkpoint's ``extras`` so that a resumed run continues
with the same Fisher, anchor and buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from losia_cl.lm_loss import answer_loss
from losia_cl.methods import Method, RegularizedMethod, TaskContext, TaskData
from losia_cl.streams.types import Stream, Task
from losia_cl.trainer.replay import ReplayBuffer, mix_replay

#: ``make_batch(indices)``: examples collated into one batch on the model's device.
MakeBatch = Callable[[Sequence[int]], Mapping[str, Tensor]]


class TrainingExtras:
    """A method's penalty and consolidation (when it regularizes) and the replay buffer (when ``share``)."""

    def __init__(self, method: Method, *, share: float | None, per_task: int, seed: int, world_size: int = 1) -> None:
        self.regularizer = method if isinstance(method, RegularizedMethod) else None
        self.share = share
        self.replay = ReplayBuffer(per_task, seed) if share else None
        self.seed = seed
        self.world_size = world_size

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, dict[str, Tensor]]:
        """The tensors a checkpoint carries (``{}`` when there are none)."""
        out = {}
        if self.regularizer is not None:
            out["method"] = self.regularizer.state_dict()
        if self.replay is not None:
            out["replay"] = self.replay.state_dict()
        return out

    def restore(self, state: Mapping[str, Mapping[str, Tensor]]) -> None:
        """Load what :meth:`state` returned (``ValueError`` when it does not fit this run)."""
        expected = set(self.state())
        if set(state) != expected:
            raise ValueError(f"checkpoint extras {sorted(state)} do not fit this run's {sorted(expected)}")
        if self.regularizer is not None:
            self.regularizer.load_state_dict(state["method"])
        if self.replay is not None:
            self.replay.load_state_dict(state["replay"])

    # ------------------------------------------------------------------ a task's training
    def mix(self, steps: list[list[list[int]]], num_examples: int, task_index: int) -> list[list[list[int]]]:
        """The task's micro-batches with replayed examples appended (indices from ``num_examples`` on)."""
        if self.replay is None:
            return steps
        return mix_replay(steps, num_examples, len(self.replay), self.share, self.seed, task_index)

    def replay_examples(self, stream: Stream) -> list[Any]:
        """The buffer's examples, to be placed after the task's own (``[]`` without replay)."""
        if self.replay is None:
            return []
        return self.replay.examples({task.name: task.train for task in stream})

    def add_penalty(self, model: nn.Module) -> float | None:
        """Backward of the method's penalty into the step's gradients; returns its value (None: no penalty).

        In data-parallel training every rank adds 1/world_size of it, so the summed gradient holds it once.
        """
        if self.regularizer is None:
            return None
        penalty = self.regularizer.penalty(model)
        if penalty is None:
            return None
        (penalty / self.world_size).backward()
        return float(penalty.detach())

    def after_task(self, model: nn.Module, task: Task, ctx: TaskContext, batch_maker: Callable[[], MakeBatch]) -> None:
        """The method learns from the finished task (``batch_maker()``: a ``make_batch`` over its training
        examples, built only when needed); the buffer keeps a sample of them."""
        if self.regularizer is not None:
            self.regularizer.consolidate(model, TaskData(len(task.train), batch_maker(), answer_loss), ctx)
        if self.replay is not None:
            self.replay.add_task(task.name, ctx.task_index, len(task.train))

    def remember(self, task: Task, task_index: int) -> None:
        """A task trained before this run (``--from``): the buffer keeps a sample of its examples all the same."""
        if self.replay is not None:
            self.replay.add_task(task.name, task_index, len(task.train))

    def describe(self, steps: list[list[list[int]]], num_examples: int) -> dict[str, Any]:
        """The replay record of a task trained on ``steps`` (``{}`` without replay)."""
        if self.replay is None:
            return {}
        replayed = sum(i >= num_examples for step in steps for micro in step for i in micro)
        total = sum(len(micro) for step in steps for micro in step)
        return {"replay": {"share": self.share, "buffer_examples": len(self.replay), "replayed_examples": replayed,
                           "trained_examples": total}}
