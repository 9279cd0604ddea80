"""A task from your own data: one data file, or (helpers of :meth:`Task.from_dataset`) a ``datasets.Dataset``.

``load_stream("reviews.csv", prompt="Review: {text}\\nSentiment:", answer="label",
labels=["negative", "positive"])`` (and ``losia-cl run --stream data/train.jsonl``) makes a
one-task stream of a ``.json``, ``.jsonl``, ``.csv``, ``.tsv`` or ``.parquet`` file.  The test
split is, in this order:

1. the sibling file named like the training file with ``train`` replaced by ``test``
   (``data/train.jsonl`` → ``data/test.jsonl``, ``sst2_train.csv`` → ``sst2_test.csv``), if it exists;
2. else a held-out slice of ``test_fraction`` (default 0.1, at least one example) drawn with a fixed
   seed (:func:`~losia_cl.streams.selection.hold_out`): the same examples in every run and seed.

``max_new_tokens`` defaults to the longest training answer in UTF-8 bytes + 1, at most 512: with
byte-level tokenizers (SmolLM2, GPT-2, Llama 3, tiny-llama) an answer never takes more tokens
than bytes, so greedy generation can always reach the end of the longest reference.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError

from .mapping import RecordMapping
from .metric_names import check_metric
from .records import DATA_SUFFIXES, read_examples
from .selection import check_limit, check_seed, hold_out, select_tasks, subsample
from .types import Example, Stream, Task

#: Default share of a single file held out as the test split when there is no sibling test file.
DEFAULT_TEST_FRACTION = 0.1
#: Upper bound of the default ``max_new_tokens``.
MAX_DEFAULT_NEW_TOKENS = 512


def default_max_new_tokens(examples: Iterable[Example]) -> int:
    """The longest answer in UTF-8 bytes + 1, at most :data:`MAX_DEFAULT_NEW_TOKENS`."""
    longest = max((len(example.answer.encode("utf-8")) for example in examples), default=0)
    return min(MAX_DEFAULT_NEW_TOKENS, longest + 1)


def is_data_file_path(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether ``load_stream`` reads ``name_or_path`` as a one-task data file (by its extension)."""
    return str(name_or_path).lower().endswith(DATA_SUFFIXES)


def sibling_test_file(train_file: Path) -> Path | None:
    """``…train…`` → ``…test…`` next to it (the last ``train`` in the name), if that file exists."""
    name = train_file.name
    at = name.lower().rfind("train")
    if at < 0:
        return None
    sibling = train_file.with_name(name[:at] + "test" + name[at + len("train"):])
    return sibling if sibling.is_file() else None


def default_task_name(path: Path) -> str:
    """A data file's task name: its stem, or its folder's name when the stem is just ``train``."""
    stem = path.stem
    bare = stem.lower().replace("train", "").strip("_-. ")
    return stem if bare else (path.parent.resolve().name or stem)


def load_data_file(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    prompt: str = "prompt",
    answer: str = "answer",
    labels: Sequence[str] | None = None,
    metric: str = "accuracy",
    max_new_tokens: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    tasks: str | Sequence[str] | None = None,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    seed: int = 0,
) -> Stream:
    """A one-task stream from one data file (see the module's docstring for the test split).

    Args:
        path: the training file (``.json``, ``.jsonl``, ``.csv``, ``.tsv``, ``.parquet``).
        name: the task's (and stream's) name; default: the file's stem, or its folder's name for
            a file called ``train.*``.
        prompt, answer, labels: where prompt and answer come from (:meth:`RecordMapping.from_spec`:
            a field name, or a format string when it holds ``{``).
        metric: the scorer (default exact-match ``accuracy``).
        max_new_tokens: generation length (default: from the longest training answer).
        test_fraction: share held out as test when there is no sibling test file.
        tasks: accepted for symmetry with other streams (only this file's task can be chosen).
        max_train_examples, max_test_examples, seed: seeded subsampling, as for manifests.
    """
    path = Path(path)
    max_train_examples = check_limit("max_train_examples", max_train_examples)
    max_test_examples = check_limit("max_test_examples", max_test_examples)
    seed = check_seed(seed)
    mapping = RecordMapping.from_spec(prompt, answer, labels)
    task_name = name if name is not None else default_task_name(path)
    select_tasks([task_name], tasks, kind="task")
    train = read_examples(path, mapping)
    test_file = sibling_test_file(path)
    if test_file is not None:
        test = read_examples(test_file, mapping)
        split_rule = f"test: {test_file}"
    else:
        train, test = hold_out(train, test_fraction, where=str(path))
        split_rule = f"test: {len(test)} held-out examples ({test_fraction:g})"
    if max_new_tokens is None:  # from every training answer, so that it does not depend on the budget
        max_new_tokens = default_max_new_tokens(train)
    train = subsample(train, max_train_examples, seed=seed, key=f"{task_name}/train")
    test = subsample(test, max_test_examples, seed=seed, key=f"{task_name}/test")
    task = build_task(task_name, train, test, metric, max_new_tokens, where=str(path))
    return Stream(name=task_name, tasks=(task,), description=f"one task from {path} ({split_rule})")


def dataset_examples(dataset: Any, mapping: RecordMapping, where: str) -> tuple[Example, ...]:
    """The examples of a ``datasets.Dataset`` (its columns checked first) or of any iterable of records."""
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, list):
        mapping.check_columns(columns, where)
    if isinstance(dataset, (str, bytes, Mapping)) or not hasattr(dataset, "__iter__"):
        raise ConfigError(f"{where}: expected a datasets.Dataset or a list of records, got {type(dataset).__name__}")
    examples = tuple(mapping.example(record, f"{where}: record {i}") for i, record in enumerate(dataset))
    if not examples:
        raise DataError(f"{where}: no examples (empty split)")
    return examples


def build_task(name: str, train: tuple[Example, ...], test: tuple[Example, ...], metric: str,
               max_new_tokens: int | None, *, where: str) -> Task:
    """The task, its metric checked and ``max_new_tokens`` defaulting to :func:`default_max_new_tokens` of ``train``."""
    check_metric(metric, where=where)
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(train)
    return Task(name=name, train=train, test=test, metric=metric, max_new_tokens=max_new_tokens)
