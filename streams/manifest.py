"""Custom streams described by a TOML manifest (``load_stream("path/to/stream.toml")``).

A manifest lists the tasks in training order; data paths are relative to the
manifest's folder and point to JSON, JSON Lines, CSV/TSV or Parquet files
(:mod:`losia_cl.streams.records`).  By default each record's ``prompt`` and
``answer`` fields are used; ``prompt_field``/``answer_field`` name other fields,
``prompt_template``/``answer_template`` build them as Python format strings over
the record's fields, and ``labels`` turns an integer label in the answer field
into its name (:mod:`losia_cl.streams.mapping`)::

    name = "support-tickets"                  # optional; default: the file's stem
    description = "three ticket-routing tasks"  # optional

    [defaults]                                # optional; used where a task leaves a key out
    metric = "accuracy"
    max_new_tokens = 8

    [[tasks]]
    name = "priority"
    train = "data/priority/train.jsonl"
    test = "data/priority/test.json"

    [[tasks]]
    name = "sentiment"
    train = "data/sst2/train.csv"
    eval = "data/sst2/eval.csv"               # optional: for losia-cl tune
    test = "data/sst2/test.csv"
    prompt_template = "Review: {sentence}\nSentiment:"
    answer_field = "label"
    labels = ["negative", "positive"]

Every task needs ``name``, ``train``, ``test``, ``metric`` and
``max_new_tokens`` (the last two, and the mapping keys, possibly from
``[defaults]``; a task's own ``prompt_field`` replaces a default
``prompt_template`` and so on); ``eval`` (examples for choosing learning
rates with ``losia-cl tune``, capped like ``test``) is optional.  Unknown keys are errors (they are usually
typos).  A malformed manifest raises :class:`~losia_cl.errors.ConfigError`
naming the file and the key; an unknown metric raises
:class:`~losia_cl.errors.UnknownNameError`; a missing or bad data file raises
:class:`~losia_cl.errors.DataError` naming the data file, the place in it and
the manifest key that points to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError, UnknownNameError
from losia_cl.names import check_name, name_key
from losia_cl.toml_file import read_toml

from .mapping import MAPPING_KEYS, RecordMapping
from .metric_names import check_metric
from .records import read_examples
from .selection import check_limit, check_seed, select_tasks, subsample
from .types import MAX_NEW_TOKENS, Stream, Task

logger = logging.getLogger(__name__)

TOP_KEYS = ("name", "description", "defaults", "tasks")
DEFAULT_KEYS = ("metric", "max_new_tokens", *MAPPING_KEYS)
TASK_KEYS = ("name", "train", "test", "eval", "metric", "max_new_tokens", *MAPPING_KEYS)
REQUIRED_TASK_KEYS = ("name", "train", "test", "metric", "max_new_tokens")


def _check_keys(where: str, table: dict[str, Any], allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}{key}: unknown key; allowed keys: {', '.join(allowed)}")


def _string(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _positive_int(where: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{where}: expected an integer from 1 to {maximum}, got {value!r}")
    return value


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed TOML of a manifest; :class:`DataError` if missing, :class:`ConfigError` if not TOML."""
    return read_toml(path, what="stream manifest")


def load_manifest(
    path: str | os.PathLike[str],
    *,
    tasks: str | Sequence[str] | None = None,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    seed: int = 0,
) -> Stream:
    """The stream a TOML manifest describes.

    Args:
        path: the manifest file; data paths in it are relative to its folder.
        tasks: a subset and order of the manifest's tasks (list or
            comma-separated string); only their data files are read.
        max_train_examples: at most this many training examples per task
            (``None``: all), drawn with ``seed`` keeping file order.
        max_test_examples: the same for the test examples.
        seed: seed of the subsampling.
    """
    max_train_examples = check_limit("max_train_examples", max_train_examples)
    max_test_examples = check_limit("max_test_examples", max_test_examples)
    seed = check_seed(seed)
    path = Path(path)
    doc = read_manifest(path)
    where = f"{path}: key "
    _check_keys(where, doc, TOP_KEYS)
    name = _string(f"{where}name", doc["name"]) if "name" in doc else path.stem
    description = _string(f"{where}description", doc["description"]) if "description" in doc else ""

    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}defaults: expected a table ([defaults]), got {type(defaults).__name__}")
    _check_keys(f"{where}defaults.", defaults, DEFAULT_KEYS)

    entries = doc.get("tasks")
    if entries is None:
        raise ConfigError(f"{where}tasks: missing; list the tasks as [[tasks]] tables")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ConfigError(f"{where}tasks: expected an array of tables ([[tasks]]), got {entries!r:.80}")
    if not entries:
        raise ConfigError(f"{where}tasks: the manifest lists no task")

    specs: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    for i, entry in enumerate(entries):
        spec = _task_spec(path, i, _with_defaults(defaults, entry))
        key = name_key(spec["name"])
        if key in keys:
            same = "is listed twice" if keys[key] == spec["name"] else f"collides with {keys[key]!r} (case/Unicode form)"
            raise ConfigError(f"{where}tasks[{i}].name: task {spec['name']!r} {same}")
        keys[key] = spec["name"]
        specs[spec["name"]] = spec

    try:
        chosen = select_tasks(list(specs), tasks, kind="task")
    except UnknownNameError as err:
        err.args = (f"{path}: {err}",)
        raise
    loaded = tuple(
        _load_task(path, specs[task_name], max_train_examples, max_test_examples, seed) for task_name in chosen
    )
    logger.info("stream %r from %s: %s", name, path, ", ".join(t.name for t in loaded))
    return Stream(name=name, tasks=loaded, description=description or f"custom stream from {path}")


#: A task's key -> the [defaults] keys it replaces (one way to build the prompt or the answer).
_REPLACES = {
    "prompt_field": ("prompt_template",),
    "prompt_template": ("prompt_field",),
    "answer_field": ("answer_template",),
    "answer_template": ("answer_field", "labels"),
}


def _with_defaults(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` completed from ``defaults``; a task's own prompt/answer source replaces the default one."""
    merged = dict(defaults)
    for key in entry:
        for replaced in _REPLACES.get(key, ()):
            merged.pop(replaced, None)
    merged.update(entry)
    return merged


def _task_spec(path: Path, index: int, entry: dict[str, Any]) -> dict[str, Any]:
    where = f"{path}: key tasks[{index}]"
    _check_keys(f"{where}.", entry, TASK_KEYS)
    for key in REQUIRED_TASK_KEYS:
        if key not in entry:
            hint = " (or in [defaults])" if key in DEFAULT_KEYS else ""
            raise ConfigError(f"{where}.{key}: missing{hint}")
    return {
        "index": index,
        "name": check_name("task", _string(f"{where}.name", entry["name"]), where=f"{where}.name"),
        "train": _string(f"{where}.train", entry["train"]),
        "test": _string(f"{where}.test", entry["test"]),
        "eval": _string(f"{where}.eval", entry["eval"]) if "eval" in entry else None,
        "metric": check_metric(entry["metric"], where=f"{where}.metric"),
        "max_new_tokens": _positive_int(f"{where}.max_new_tokens", entry["max_new_tokens"], MAX_NEW_TOKENS),
        "mapping": _mapping(where, entry),
    }


def _mapping(where: str, entry: dict[str, Any]) -> RecordMapping:
    try:
        return RecordMapping(**{key: entry[key] for key in MAPPING_KEYS if key in entry})
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def _load_task(
    path: Path,
    spec: dict[str, Any],
    max_train: int | None,
    max_test: int | None,
    seed: int,
) -> Task:
    splits: dict[str, tuple] = {"eval": ()}
    for split, limit in (("train", max_train), ("test", max_test), ("eval", max_test)):
        if spec[split] is None:
            continue
        data_file = path.parent / spec[split]
        try:
            examples = read_examples(data_file, spec["mapping"])
        except DataError as err:
            raise DataError(f"{err} (manifest {path}, key tasks[{spec['index']}].{split})") from None
        splits[split] = subsample(examples, limit, seed=seed, key=f"{spec['name']}/{split}")
    return Task(
        name=spec["name"],
        train=splits["train"],
        test=splits["test"],
        metric=spec["metric"],
        max_new_tokens=spec["max_new_tokens"],
        eval=splits["eval"],
    )
