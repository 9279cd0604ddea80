"""A task from your own data: one data file, or a ``datasets.Dataset`` (:func:`task_from_dataset`, :meth:`Task.from_dataset`).

``load_stream("reviews.csv", prompt="Review: {text}\\nSentiment:", answer="label",
labels=["negative", "positive"])`` (and ``losia-cl run --stream data/train.jsonl``, with
``--prompt-template``, ``--answer-field`` and ``--labels`` for those three: :func:`data_file_mapping`)
makes a one-task stream of a ``.json``, ``.jsonl``, ``.csv``, ``.tsv`` or ``.parquet`` file.  A file
whose first record lacks a field the mapping reads is refused with its fields and those options
(:func:`data_file_hint`).  The test split is, in this order:

1. the sibling file named like the training file with ``train`` replaced by ``test``
   (``data/train.jsonl`` → ``data/test.jsonl``, ``sst2_train.csv`` → ``sst2_test.csv``), if it exists;
2. else a held-out slice of ``test_fraction`` (default 0.1, at least one example) drawn with a fixed
   seed (:func:`~losia_cl.streams.selection.hold_out`): the same examples in every run and seed.

``max_new_tokens`` defaults to the longest training answer in UTF-8 bytes + 1, at most 512: with
byte-level tokenizers (SmolLM2, GPT-2, Llama 3, tiny-llama) an answer never takes more tokens
than bytes, so greedy generation can always reach the end of the longest reference.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError

from . import types as _types
from .mapping import RecordMapping
from .metric_names import check_metric
from .records import DATA_SUFFIXES, read_examples
from .selection import check_limit, check_seed, hold_out, select_tasks, subsample
from .types import Example, Stream, Task

_log = logging.getLogger(__name__)

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
    hint = functools.partial(data_file_hint, mapping)
    train = read_examples(path, mapping, hint=hint)
    test_file = sibling_test_file(path)
    if test_file is not None:
        test = read_examples(test_file, mapping, hint=hint)
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


def data_file_hint(mapping: RecordMapping, fields: Sequence[str]) -> str:
    """How to map a data file's ``fields`` to prompt and answer: the options of ``losia-cl run``/``eval`` and of
    :func:`load_data_file` (the end of a "missing field" error)."""
    prompt, answer = mapping.example_options(fields)
    return (f"say where the prompt and the answer are, e.g. --prompt-template '{prompt}\\nAnswer:' "
            f"--answer-field {answer} (and --labels NAME,NAME,... for integer labels); from Python "
            f"load_stream(path, prompt=..., answer=..., labels=...)")


#: Keyword of :meth:`Task.from_dataset` that holds a ``DatasetDict`` split's examples.
DATASET_SPLITS = {"train": ("train",), "test": ("test",), "eval": ("validation", "eval")}


def class_label_columns(dataset: Any) -> dict[str, tuple[str, ...]]:
    """``{column: label names}`` of the ``ClassLabel`` columns of a ``datasets.Dataset`` (``{}`` for other data)."""
    features = getattr(dataset, "features", None)
    if not isinstance(features, Mapping):
        return {}
    return {str(column): tuple(str(n) for n in feature.names) for column, feature in features.items()
            if type(feature).__name__ == "ClassLabel" and getattr(feature, "names", None)}


#: The mapping options of a single data file on the command line (RunConfig fields) and their flags.
MAPPING_FLAGS = {"prompt_template": "--prompt-template", "answer_field": "--answer-field", "labels": "--labels"}


def data_file_mapping(
    stream: object,
    prompt_template: str | None = None,
    answer_field: str | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The :func:`load_data_file` options (``prompt``, ``answer``, ``labels``) of the command line's mapping
    flags; :class:`ConfigError` if a flag is given for a stream that is not one data file, or is malformed."""
    given = {key: value for key, value in (("prompt_template", prompt_template), ("answer_field", answer_field),
                                           ("labels", labels)) if value is not None}
    if not given:
        return {}
    if not (isinstance(stream, (str, os.PathLike)) and is_data_file_path(stream)):
        flags = ", ".join(MAPPING_FLAGS[key] for key in given)
        shown = getattr(stream, "name", stream)
        raise ConfigError(
            f"{flags}: only for a single data file (--stream DATA{'/'.join(DATA_SUFFIXES)}), not stream "
            f"{shown!r:.80}; a manifest maps each task with its own prompt_template/answer_field/labels keys"
        )
    options: dict[str, Any] = {}
    if prompt_template is not None:
        options["prompt"] = prompt_template
    if answer_field is not None:
        options["answer"] = answer_field
    if labels is not None:
        options["labels"] = list(labels)
    RecordMapping.from_spec(options.get("prompt", "prompt"), options.get("answer", "answer"), options.get("labels"))
    return options


def dataset_examples(
    dataset: Any, mapping: RecordMapping, where: str, *, class_label_names: bool = True
) -> tuple[Example, ...]:
    """The examples of a ``datasets.Dataset`` (its columns checked first) or of any iterable of records.

    A ``ClassLabel`` column the mapping reads gives its label name (``"positive"``, not ``1``), unless
    ``class_label_names`` is False or ``mapping.labels`` names the answer's labels.
    """
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, list):
        mapping.check_columns(columns, where, hint="pass prompt= and answer= (a field name, or a format string "
                                                   "over the fields when it holds '{')")
    if isinstance(dataset, (str, bytes, Mapping)) or not hasattr(dataset, "__iter__"):
        raise ConfigError(f"{where}: expected a datasets.Dataset or a list of records, got {type(dataset).__name__}")
    names = class_label_columns(dataset) if class_label_names else {}
    names = {column: labels for column, labels in names.items() if column in mapping.fields
             and not (mapping.labels is not None and column == mapping.answer_field)}
    records = (_named(record, names) for record in dataset) if names else iter(dataset)
    examples = tuple(mapping.example(record, f"{where}: record {i}") for i, record in enumerate(records))
    if not examples:
        raise DataError(f"{where}: no examples (empty split)")
    return examples


def _named(record: Any, names: dict[str, tuple[str, ...]]) -> Any:
    """``record`` with each ``ClassLabel`` value replaced by its name (-1, a missing label, stays as it is)."""
    if not isinstance(record, Mapping):
        return record
    out = dict(record)
    for column, labels in names.items():
        value = out.get(column)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
            out[column] = labels[value]
    return out


def build_task(name: str, train: tuple[Example, ...], test: tuple[Example, ...], metric: str,
               max_new_tokens: int | None, *, where: str) -> Task:
    """The task, its metric checked and ``max_new_tokens`` defaulting to :func:`default_max_new_tokens` of ``train``."""
    check_metric(metric, where=where)
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(train)
    return Task(name=name, train=train, test=test, metric=metric, max_new_tokens=max_new_tokens)


def task_from_dataset(
    dataset: Any,
    *,
    prompt: str = "prompt",
    answer: str = "answer",
    labels: Sequence[str] | None = None,
    name: str = "task",
    metric: str = "accuracy",
    max_new_tokens: int | None = None,
    test: Any = None,
    eval: Any = None,  # noqa: A002 - the split's name, as Task.eval
    test_fraction: float = 0.1,
    class_label_names: bool = True,
) -> Task:
    """A task from a ``datasets.Dataset``, a ``DatasetDict`` or a list of dicts.

    ``prompt``/``answer``: a field name, or a format string over the fields when it holds ``{``
    (``prompt="{sentence}\nSentiment:"``); ``labels``: names of integer labels in the answer
    field.  A ``ClassLabel`` column gives its label names (``"positive"``, not ``1``) unless
    ``labels`` is given or ``class_label_names=False``.  A ``DatasetDict`` gives its ``train``
    split, its ``test`` split and its ``validation`` (or ``eval``) split as ``eval``, the split
    ``losia-cl tune`` scores on; other splits are left out with a warning.  ``test`` and
    ``eval`` (same kinds as ``dataset``) override those; without a test split, a held-out slice
    of ``test_fraction`` of the training examples (fixed seed) is the test split.
    ``max_new_tokens`` defaults to the longest training answer in UTF-8 bytes + 1 (at most 512).
    """
    mapping = RecordMapping.from_spec(prompt, answer, labels)
    where = f"dataset of task {name!r}"
    if isinstance(dataset, Mapping):  # a DatasetDict
        if "train" not in dataset:
            raise DataError(f"{where}: a DatasetDict needs a 'train' split; it has "
                            f"{', '.join(map(str, dataset)) or 'none'}")
        used = {"train"}
        for split, given in (("test", test), ("eval", eval)):
            found = next((key for key in DATASET_SPLITS[split] if key in dataset), None)
            if found is not None:
                used.add(found)
                if given is None:
                    given = dataset[found]
            test, eval = (given, eval) if split == "test" else (test, given)
        unused = [str(key) for key in dataset if key not in used]
        if unused:
            _log.warning(
                "%s: split(s) %s left out (a task uses train, test and validation/eval)", where, ", ".join(unused))
        dataset = dataset["train"]
    options = {"class_label_names": class_label_names}
    train = dataset_examples(dataset, mapping, where, **options)
    if test is None:
        train, held_out = hold_out(train, test_fraction, where=where)
    else:
        held_out = dataset_examples(test, mapping, f"test {where}", **options)
    task = build_task(name, train, held_out, metric, max_new_tokens, where=where)
    if eval is None:
        return task
    return replace(task, eval=dataset_examples(eval, mapping, f"eval {where}", **options))


#: Task.from_dataset reads datasets through this module (types.py imports nothing that reads data)
_types._dataset_reader = task_from_dataset
