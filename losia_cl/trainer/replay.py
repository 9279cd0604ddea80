"""Experience replay: a seeded buffer of earlier tasks' training examples, mixed into later tasks' batches.

After each task, :class:`ReplayBuffer` keeps a seeded uniform sample of at most ``per_task`` of its
training examples (as indices into the task's training split: the buffer is plain data, a few integers
per example).  While a later task trains, :func:`mix_replay` adds buffer examples to each of its
micro-batches so that a share ``share`` of the examples trained on are replayed: the task's own examples,
their order and the number of optimizer steps are those of the run without replay, and each micro-batch
grows by the replayed examples (``batch_size · share / (1 − share)`` of them on average; the running count
is rounded, so the task's overall replayed share is ``share`` up to one example).  Buffer examples are
drawn in seeded shuffled passes over the whole buffer, so each is replayed about equally often.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def _generator(seed: int, task_index: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + task_index * 7_919 + salt)


class ReplayBuffer:
    """Indices of the training examples kept of every finished task, ``{task name: int64 tensor}``."""

    def __init__(self, per_task: int, seed: int) -> None:
        self.per_task = per_task
        self.seed = seed
        self.kept: dict[str, Tensor] = {}

    def add_task(self, task: str, task_index: int, num_examples: int) -> None:
        """Keep a seeded sample of at most ``per_task`` of the task's ``num_examples`` training examples."""
        order = torch.randperm(num_examples, generator=_generator(self.seed, task_index, 1))
        self.kept[task] = order[: self.per_task].sort().values

    def __len__(self) -> int:
        return sum(len(v) for v in self.kept.values())

    def examples(self, train_splits: Mapping[str, Sequence]) -> list:
        """The kept examples themselves, task by task in the order tasks were added."""
        return [train_splits[task][i] for task, indices in self.kept.items() for i in indices.tolist()]

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.kept)

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        if not all(isinstance(v, Tensor) and v.dtype == torch.int64 and v.dim() == 1 for v in state.values()):
            raise ValueError("the replay buffer must map task names to 1-d int64 index tensors")
        self.kept = dict(state)


def replay_counts(sizes: Sequence[int], share: float) -> list[int]:
    """Buffer examples to add to micro-batches of ``sizes`` task examples so that ``share`` of all are replayed.

    The running total after micro-batch j is ``floor(ratio · B_j + 1/2)`` with ``B_j`` the task examples so
    far and ``ratio = share / (1 − share)``.

    >>> replay_counts([2, 2, 2, 2], 0.2)
    [1, 0, 1, 0]
    """
    ratio = share / (1 - share)
    counts, seen, given = [], 0, 0
    for size in sizes:
        seen += size
        total = math.floor(ratio * seen + 0.5)
        counts.append(total - given)
        given = total
    return counts


def mix_replay(steps: list[list[list[int]]], offset: int, buffer_size: int, share: float, seed: int,
               task_index: int) -> list[list[list[int]]]:
    """``steps`` (a task's micro-batches of example indices) with buffer examples appended to each micro-batch.

    Buffer example ``k`` appears as index ``offset + k`` (the trainer puts the buffer's examples after the
    task's own).  Deterministic in ``(seed, task_index)``; ``steps`` unchanged when the buffer is empty.
    """
    if buffer_size == 0:
        return steps
    counts = iter(replay_counts([len(m) for step in steps for m in step], share))
    generator = _generator(seed, task_index, 2)
    queue: list[int] = []
    out = []
    for step in steps:
        mixed = []
        for micro in step:
            need = next(counts)
            drawn: list[int] = []
            while len(drawn) < need:
                if not queue:
                    queue = torch.randperm(buffer_size, generator=generator).tolist()
                drawn.append(queue.pop())
            mixed.append([*micro, *(offset + k for k in drawn)])
        out.append(mixed)
    return out
