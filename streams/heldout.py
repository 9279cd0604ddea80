"""Eval splits for choosing hyperparameters: a task's own, or a seeded slice held out from its training data.

``losia-cl tune`` trains on ``train`` and scores on ``eval``; the ``test`` split stays untouched.  A task
that comes without an eval split (a manifest without ``eval``) gets one here: a deterministic slice of its
training examples, moved out of ``train`` (so the two are disjoint) and leaving out any example whose
prompt also occurs in ``test`` (so eval and test are disjoint too; that check is the only look at ``test``,
and it happens only for tasks without an eval split).
"""

from __future__ import annotations

import random
from dataclasses import replace

from losia_cl.errors import ConfigError, DataError

from .types import Stream, Task

#: share of a task's training examples held out when it has no eval split ...
HELDOUT_FRACTION = 0.1
#: ... capped at this many examples.
HELDOUT_MAX = 100


def heldout_size(num_train: int) -> int:
    """How many training examples a task without an eval split lends to eval: 10 %, 1..100."""
    return max(1, min(HELDOUT_MAX, round(HELDOUT_FRACTION * num_train)))


def with_eval_split(task: Task, *, size: int | None = None, seed: int = 0) -> Task:
    """``task`` with a non-empty eval split (its own if it has one, else ``size`` examples held out from train).

    The held-out examples are drawn with a generator seeded by ``(seed, task name)`` among the training
    examples whose prompt is not a test prompt; they leave ``train``, which keeps its order.
    """
    if task.eval:
        return task
    test_prompts = {example.prompt for example in task.test}
    candidates = [i for i, example in enumerate(task.train) if example.prompt not in test_prompts]
    size = heldout_size(len(task.train)) if size is None else size
    if size < 1:
        raise ConfigError(f"eval size must be >= 1, got {size}")
    if len(candidates) < 2 or size >= len(task.train) or size > len(candidates):
        raise DataError(
            f"task {task.name!r}: cannot hold out {size} eval example(s) from {len(task.train)} training "
            f"example(s) ({len(candidates)} not shared with test); give the task an eval split"
        )
    rng = random.Random(f"losia-cl-heldout:{seed}:{task.name}")
    held = set(rng.sample(candidates, size))
    return replace(
        task,
        train=tuple(ex for i, ex in enumerate(task.train) if i not in held),
        eval=tuple(task.train[i] for i in sorted(held)),
    )


def tuning_stream(stream: Stream, *, num_tasks: int, seed: int = 0, eval_size: int | None = None) -> Stream:
    """The first ``num_tasks`` tasks, set up for choosing hyperparameters.

    Each task trains on its training examples (less any held-out slice) and is scored on its eval split:
    the returned tasks carry the eval examples in their ``test`` field, so the ordinary trainer and
    evaluator score eval and can never reach the real test split.
    """
    if not isinstance(num_tasks, int) or isinstance(num_tasks, bool) or num_tasks < 1:
        raise ConfigError(f"tune_tasks = {num_tasks!r} is invalid: it must be an integer >= 1")
    if num_tasks > len(stream):
        raise ConfigError(f"tune_tasks = {num_tasks} is more than the stream's {len(stream)} task(s)")
    tasks = []
    for task in stream.tasks[:num_tasks]:
        split = with_eval_split(task, size=eval_size, seed=seed)
        tasks.append(Task(name=split.name, train=split.train, test=split.eval, metric=split.metric,
                          max_new_tokens=split.max_new_tokens, eval=split.eval))
    return Stream(name=stream.name, tasks=tuple(tasks), description=f"{stream.description} (eval splits)")
