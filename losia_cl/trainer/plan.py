"""Which examples every micro-batch of every optimizer step of a task holds (deterministic in the seed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from losia_cl.errors import ConfigError
from losia_cl.fields import documented


def _check_int(name: str, value: object, minimum: int, nullable: bool = False) -> None:
    if nullable and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} = {value!r} is invalid: it must be an integer >= {minimum}")


@dataclass(frozen=True)
class BatchPlan:
    """The training budget and data order of a task, shared by the trainer, the Avalanche strategy and the bench.

    >>> BatchPlan(epochs=1, batch_size=2, grad_accum=2, shuffle=False).steps(5, task_index=0)
    [[[0, 1], [2, 3]], [[4]]]
    """

    epochs: int = documented("Epochs over each task's training examples.", 1)
    batch_size: int = documented("Training examples per micro-batch.", 8)
    grad_accum: int = documented("Micro-batches per optimizer step.", 1)
    max_steps: int | None = documented("Cap on optimizer steps per task (default: no cap).", None)
    shuffle: bool = documented("Shuffle each task's training examples every epoch (seeded); False: file order.", True)
    seed: int = documented("Seed of the data order.", 0)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum"):
            _check_int(name, getattr(self, name), 1)
        _check_int("max_steps", self.max_steps, 1, nullable=True)
        _check_int("seed", self.seed, -(2**62))
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"shuffle = {self.shuffle!r} is invalid: it must be true or false")

    def micro_batches_per_epoch(self, num_examples: int) -> int:
        return math.ceil(num_examples / self.batch_size)

    def num_steps(self, num_examples: int) -> int:
        """``len(self.steps(num_examples, i))`` for any task ``i``, without drawing the order.

        >>> BatchPlan(epochs=2, batch_size=2, grad_accum=3, max_steps=None).num_steps(5)
        2
        """
        steps = math.ceil(self.epochs * self.micro_batches_per_epoch(num_examples) / self.grad_accum)
        return min(steps, self.max_steps) if self.max_steps else steps

    def steps(self, num_examples: int, task_index: int) -> list[list[list[int]]]:
        """Example indices of every micro-batch (inner lists) of every optimizer step (outer list).

        With ``shuffle`` each epoch visits the examples in a random order seeded by ``(seed, task_index)``,
        else in file order.  Micro-batches run on across epoch boundaries into the same optimizer step;
        the last step may hold fewer than ``grad_accum`` micro-batches.
        """
        import torch  # here, so that RunConfig (and losia-cl --help) loads without torch

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + task_index)
        micro: list[list[int]] = []
        for _ in range(self.epochs):
            if self.shuffle:
                order = torch.randperm(num_examples, generator=generator).tolist()
            else:
                order = list(range(num_examples))
            micro.extend(order[i:i + self.batch_size] for i in range(0, num_examples, self.batch_size))
        steps = [micro[i:i + self.grad_accum] for i in range(0, len(micro), self.grad_accum)]
        return steps[: self.max_steps] if self.max_steps else steps
