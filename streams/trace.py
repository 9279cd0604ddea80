"""The ``trace`` stream: the TRACE continual-learning benchmark, read from its released files.

TRACE (Wang et al. 2023, "TRACE: A Comprehensive Benchmark for Continual
Learning in Large Language Models") is distributed by its authors
(https://github.com/BeyonderXX/TRACE); losia-cl does not download it.  Point
the loader at the folder holding one sub-folder per task::

    <root>/C-STANCE/train.json    <root>/C-STANCE/eval.json    <root>/C-STANCE/test.json
    <root>/FOMC/train.json        ...
    ...
    <root>/20Minuten/test.json

Each file is a JSON list of ``{"prompt": str, "answer": str}`` records (JSON
Lines is accepted too, as is the ``.jsonl`` extension).  ``train`` is used for
training, ``test`` for evaluation and ``eval`` (optional) for choosing learning
rates with ``losia-cl tune``.  The root comes
from ``data_dir`` (``--data-dir`` on the command line) or else the
``LOSIA_CL_DATA`` environment variable; a root without task folders but with
a ``TRACE`` sub-folder is read through that sub-folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from losia_cl.errors import DataError

from .records import read_examples
from .registry import register_stream
from .selection import check_limit, check_seed, select_tasks, subsample
from .types import Stream, Task

logger = logging.getLogger(__name__)

DATA_ENV = "LOSIA_CL_DATA"
TRACE_URL = "https://github.com/BeyonderXX/TRACE"
DEFAULT_MAX_TRAIN = 5000
DEFAULT_MAX_TEST = 2000


@dataclass(frozen=True)
class TraceTaskSpec:
    """A TRACE task's folder name, scorer and generation length.

    Attributes:
        name: the task's folder name in the released data (and the task's name).
        metric: the scorer's name (every TRACE score is on a 0–1 scale).
        max_new_tokens: tokens generated per test prompt.
    """

    name: str
    metric: str
    max_new_tokens: int


#: TRACE's tasks in the benchmark's default order.  Generation lengths: short
#: for the label answers, enough for "Answer: X" in ScienceQA (only the letter
#: is scored, the explanation after it is not), a code line for Py150, a
#: paragraph for the MeetingBank summaries and the 20Minuten simplifications.
TRACE_TASKS: tuple[TraceTaskSpec, ...] = (
    TraceTaskSpec("C-STANCE", "accuracy", 16),  # 支持 / 反对 / 中立
    TraceTaskSpec("FOMC", "accuracy", 8),  # dovish / hawkish / neutral
    TraceTaskSpec("MeetingBank", "rouge_l", 256),  # meeting summary
    TraceTaskSpec("Py150", "edit_similarity", 64),  # next line of code
    TraceTaskSpec("ScienceQA", "letter_accuracy", 32),  # "Answer: A\nBecause ..."
    TraceTaskSpec("NumGLUE-cm", "accuracy", 16),  # a number
    TraceTaskSpec("NumGLUE-ds", "accuracy", 16),  # a number
    TraceTaskSpec("20Minuten", "sari", 256),  # simplified German text
)
TRACE_TASK_NAMES: tuple[str, ...] = tuple(spec.name for spec in TRACE_TASKS)

_LAYOUT = "<root>/<Task>/{train,eval,test}.json with tasks " + ", ".join(TRACE_TASK_NAMES)
_HOW_TO_POINT = (
    f"TRACE's data is distributed by its authors ({TRACE_URL}); download it and point to the folder "
    f"with --data-dir (data_dir=...) or the {DATA_ENV} environment variable"
)


def resolve_trace_root(data_dir: str | os.PathLike[str] | None) -> Path:
    """The folder holding TRACE's task folders, from ``data_dir`` or ``$LOSIA_CL_DATA``.

    Raises :class:`DataError` saying which layout is expected and how to
    point to the data if no folder is given or it does not exist.
    """
    if data_dir is None:
        from_env = os.environ.get(DATA_ENV, "").strip()
        if not from_env:
            raise DataError(f"no TRACE data directory given; expected {_LAYOUT}. {_HOW_TO_POINT}")
        root, source = Path(from_env).expanduser(), f"${DATA_ENV}"
    else:
        root, source = Path(data_dir).expanduser(), "data_dir"
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise DataError(f"{root}: TRACE data directory ({source}) {what}; expected {_LAYOUT}. {_HOW_TO_POINT}")
    if not any((root / name).is_dir() for name in TRACE_TASK_NAMES) and (root / "TRACE").is_dir():
        root = root / "TRACE"
    return root


def _split_file(folder: Path, split: str) -> Path:
    for suffix in (".json", ".jsonl"):
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / (split + '.json')}: file not found (TRACE layout: {_LAYOUT})")


def _missing_tasks_error(root: Path, names: Sequence[str]) -> DataError:
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    found = ", ".join(present) if present else "no sub-folders"
    paths = ", ".join(str(root / name) for name in names)
    return DataError(
        f"{paths}: TRACE task folder{'s' if len(names) > 1 else ''} not found (found in {root}: {found}); "
        f"expected {_LAYOUT}. Leave the task out with tasks=[...] (--tasks), or {_HOW_TO_POINT}"
    )


def load_trace_task(
    root: Path,
    spec: TraceTaskSpec,
    *,
    max_train_examples: int | None,
    max_test_examples: int | None,
    seed: int,
) -> Task:
    """One TRACE task read from ``root/<name>/``, subsampled to the given sizes."""
    folder = root / spec.name
    if not folder.is_dir():
        raise _missing_tasks_error(root, [spec.name])
    train = read_examples(_split_file(folder, "train"))
    test = read_examples(_split_file(folder, "test"))
    has_eval = any((folder / f"eval{suffix}").is_file() for suffix in (".json", ".jsonl"))
    evaluation = read_examples(_split_file(folder, "eval")) if has_eval else ()
    return Task(
        name=spec.name,
        train=subsample(train, max_train_examples, seed=seed, key=f"{spec.name}/train"),
        test=subsample(test, max_test_examples, seed=seed, key=f"{spec.name}/test"),
        metric=spec.metric,
        max_new_tokens=spec.max_new_tokens,
        eval=subsample(evaluation, max_test_examples, seed=seed, key=f"{spec.name}/eval"),
    )


@register_stream("trace", f"TRACE benchmark, 8 tasks read from disk (--data-dir or ${DATA_ENV}; data from {TRACE_URL})")
def load_trace(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    tasks: str | Sequence[str] | None = None,
    max_train_examples: int | None = DEFAULT_MAX_TRAIN,
    max_test_examples: int | None = DEFAULT_MAX_TEST,
    seed: int = 0,
) -> Stream:
    """The ``trace`` stream.

    Args:
        data_dir: folder of the task folders; default ``$LOSIA_CL_DATA``.
        tasks: subset and order of the tasks (list or comma-separated string,
            case-insensitive); default all eight in TRACE's order.  Tasks left
            out need not be on disk.
        max_train_examples: at most this many training examples per task
            (TRACE uses 5000; ``None`` keeps all), drawn with ``seed``.
        max_test_examples: at most this many test examples per task (TRACE uses
            2000; ``None`` keeps all), drawn with ``seed``; the same cap applies
            to the eval split.
        seed: seed of the subsampling (file order is kept).
    """
    max_train_examples = check_limit("max_train_examples", max_train_examples)
    max_test_examples = check_limit("max_test_examples", max_test_examples)
    seed = check_seed(seed)
    chosen = select_tasks(TRACE_TASK_NAMES, tasks, kind="TRACE task")
    root = resolve_trace_root(data_dir)
    specs = {spec.name: spec for spec in TRACE_TASKS}
    missing = [name for name in chosen if not (root / name).is_dir()]
    if missing:
        raise _missing_tasks_error(root, missing)
    loaded = tuple(
        load_trace_task(
            root,
            specs[name],
            max_train_examples=max_train_examples,
            max_test_examples=max_test_examples,
            seed=seed,
        )
        for name in chosen
    )
    logger.info(
        "TRACE from %s: %s", root, ", ".join(f"{t.name} ({len(t.train)}/{len(t.test)})" for t in loaded)
    )
    return Stream(name="trace", tasks=loaded, description=f"TRACE benchmark read from {root}")
