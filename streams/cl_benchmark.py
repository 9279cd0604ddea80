"""The ``cl-benchmark`` stream: the classification benchmark of O-LoRA, read from its released files.

O-LoRA (Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual Learning") released
the classification tasks that continual-learning papers for LLMs share (the "standard CL benchmark" of
AG News, Amazon, Yelp, DBpedia, Yahoo, and the 15-task long sequence with GLUE and SuperGLUE tasks and
IMDB) at https://github.com/cmnfriend/O-LoRA, folder ``CL_Benchmark``.  losia-cl does not download it;
point the loader at that folder::

    <root>/SC/SST-2/train.json   <root>/SC/SST-2/test.json   <root>/SC/SST-2/labels.json
    <root>/TC/agnews/...         <root>/NLI/MNLI/...          <root>/BoolQA/BoolQA/...

``train.json`` and ``test.json`` are JSON lists of ``{"sentence": str, "label": str}``; ``labels.json``
lists the label words.  ``dev.json`` is not read: in the released data it is a copy of ``test.json``.

Prompts follow O-LoRA's zero-shot instruction and options::

    What is the sentiment of the following paragraph? Choose one from the option.
    Option: Good, Bad
    Text: a gorgeous , witty , seductive movie .
    Answer:

(COPA's sentences carry their own question and options, so its prompt is the sentence and ``Answer:``.)
The answer is the label word, scored by exact match (``accuracy``: the generation, stripped, must be the
label).

The **eval** split (what ``losia-cl tune`` scores) is a seeded slice held out from ``train.json``, drawn
before the training examples and the same for every ``seed``, so no run trains on it.  A training example
whose sentence also occurs in ``test.json`` or twice in ``train.json`` never enters the eval split; the loader
logs a warning when ``train.json`` and ``test.json`` share sentences.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losia_cl.errors import DataError

from .records import read_records, record_place
from .registry import register_stream
from .selection import check_limit, check_seed, select_tasks, subsample
from .types import Example, Stream, Task

logger = logging.getLogger(__name__)

DATA_ENV = "LOSIA_CL_DATA"
OLORA_URL = "https://github.com/cmnfriend/O-LoRA"
#: eval examples held out from train when ``max_test_examples`` is None.
DEFAULT_EVAL = 200
#: tokens generated per test prompt: the longest label ("Science or Technology") and EOS fit.
MAX_NEW_TOKENS = 8

#: O-LoRA's zero-shot instruction per task group (configs/instruction_config.json of the release).
INSTRUCTIONS = {
    "NLI": 'What is the logical relationship between the "sentence 1" and the "sentence 2"? '
           "Choose one from the option.",
    "QQP": 'Whether the "first sentence" and the "second sentence" have the same meaning? '
           "Choose one from the option.",
    "SC": "What is the sentiment of the following paragraph? Choose one from the option.",
    "TC": "What is the topic of the following paragraph? Choose one from the option.",
    "BoolQA": "According to the following passage, is the question true or false? Choose one from the option.",
    "MultiRC": "According to the following passage and question, is the candidate answer true or false? "
               "Choose one from the option.",
    "WiC": "Given a word and two sentences, whether the word is used with the same sense in both sentence? "
           "Choose one from the option.",
    "COPA": None,  # the sentence holds the question and the options A and B
}


@dataclass(frozen=True)
class ClTaskSpec:
    """A task of the benchmark: its group folder (which also picks the instruction) and its name."""

    group: str
    name: str

    @property
    def instruction(self) -> str | None:
        return INSTRUCTIONS[self.group]


#: Every task, in the order of O-LoRA's 15-task long sequence (its scripts/long.sh).  The first four of
#: its standard benchmark (order 1: dbpedia, amazon, yahoo, agnews) are among them.
CL_TASKS: tuple[ClTaskSpec, ...] = (
    ClTaskSpec("SC", "yelp"),
    ClTaskSpec("SC", "amazon"),
    ClTaskSpec("NLI", "MNLI"),
    ClTaskSpec("NLI", "CB"),
    ClTaskSpec("COPA", "COPA"),
    ClTaskSpec("QQP", "QQP"),
    ClTaskSpec("NLI", "RTE"),
    ClTaskSpec("SC", "IMDB"),
    ClTaskSpec("SC", "SST-2"),
    ClTaskSpec("TC", "dbpedia"),
    ClTaskSpec("TC", "agnews"),
    ClTaskSpec("TC", "yahoo"),
    ClTaskSpec("MultiRC", "MultiRC"),
    ClTaskSpec("BoolQA", "BoolQA"),
    ClTaskSpec("WiC", "WiC"),
)
CL_TASK_NAMES: tuple[str, ...] = tuple(spec.name for spec in CL_TASKS)

_LAYOUT = "<root>/<group>/<task>/{train,test,labels}.json (e.g. <root>/SC/SST-2/train.json)"
_HOW_TO_POINT = (
    f"the benchmark is released with O-LoRA ({OLORA_URL}, folder CL_Benchmark); point to that folder with "
    f"--data-dir (data_dir=...) or the {DATA_ENV} environment variable"
)


def build_prompt(spec: ClTaskSpec, labels: Sequence[str], sentence: str) -> str:
    """O-LoRA's prompt: instruction, ``Option: a, b, c``, the sentence, ``Answer:``."""
    if spec.instruction is None:
        return f"{sentence}\nAnswer:"
    return f"{spec.instruction}\nOption: {', '.join(labels)} \n{sentence}\nAnswer:"


def resolve_root(data_dir: str | os.PathLike[str] | None) -> Path:
    """The ``CL_Benchmark`` folder, from ``data_dir`` or ``$LOSIA_CL_DATA`` (or a ``CL_Benchmark`` inside it)."""
    if data_dir is None:
        from_env = os.environ.get(DATA_ENV, "").strip()
        if not from_env:
            raise DataError(f"no CL benchmark data directory given; expected {_LAYOUT}. {_HOW_TO_POINT}")
        root, source = Path(from_env).expanduser(), f"${DATA_ENV}"
    else:
        root, source = Path(data_dir).expanduser(), "data_dir"
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise DataError(f"{root}: CL benchmark data directory ({source}) {what}; expected {_LAYOUT}. {_HOW_TO_POINT}")
    groups = {spec.group for spec in CL_TASKS}
    if not any((root / group).is_dir() for group in groups) and (root / "CL_Benchmark").is_dir():
        root = root / "CL_Benchmark"
    return root


def _file(folder: Path, split: str) -> Path:
    path = folder / f"{split}.json"
    if not path.is_file():
        raise DataError(f"{path}: file not found (layout: {_LAYOUT}); leave the task out with --tasks, or "
                        f"{_HOW_TO_POINT}")
    return path


def read_labels(path: Path) -> tuple[str, ...]:
    """``labels.json``: a non-empty JSON list of distinct label words."""
    import json

    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read the label list ({error})") from None
    if (not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels)
            or len(set(labels)) != len(labels)):
        raise DataError(f"{path}: expected a JSON list of distinct, non-empty label words, got {labels!r:.80}")
    return tuple(labels)


#: The label of a record without a gold label (MNLI's test split has 131): such records are left out.
NO_GOLD_LABEL = "-"


def _sentences(path: Path, labels: Sequence[str]) -> list[tuple[str, str]]:
    """``(sentence, label)`` of every record, each checked: both strings, the label one of ``labels``.

    Records labelled ``-`` (no gold label) are left out, with a warning; any other unknown label raises.
    """
    out, unlabelled = [], 0
    for index, record in enumerate(read_records(path)):
        sentence, label = record.get("sentence"), record.get("label")
        if not isinstance(sentence, str) or not sentence.strip():
            raise DataError(f"{path}: {record_place(path, index)}: field 'sentence' must be a non-empty "
                            f"string, got {sentence!r:.60}")
        if label == NO_GOLD_LABEL and label not in labels:
            unlabelled += 1
            continue
        if label not in labels:
            raise DataError(f"{path}: {record_place(path, index)}: field 'label' is {label!r:.60}, not one of "
                            f"{path.parent / 'labels.json'}'s {', '.join(labels)}")
        out.append((sentence, label))
    if unlabelled:
        logger.warning("%s: %d record(s) labelled %r (no gold label) left out", path, unlabelled, NO_GOLD_LABEL)
    if not out:
        raise DataError(f"{path}: no labelled record")
    return out


def _eval_indices(train: Sequence[tuple[str, str]], test_sentences: set[str], size: int, task: str) -> set[int]:
    """``size`` training positions for the eval split: a draw fixed per task, never a sentence of test or
    one that occurs twice in train."""
    counts = Counter(sentence for sentence, _ in train)
    candidates = [i for i, (sentence, _) in enumerate(train)
                  if counts[sentence] == 1 and sentence not in test_sentences]
    if size >= len(train) or size > len(candidates):
        raise DataError(f"task {task!r}: cannot hold out {size} eval example(s) from {len(train)} training "
                        f"example(s) ({len(candidates)} usable); lower max_test_examples")
    rng = random.Random(f"losia-cl:cl-benchmark-eval:{task}")
    return set(rng.sample(candidates, size))


def load_cl_task(
    root: Path,
    spec: ClTaskSpec,
    *,
    max_train_examples: int | None,
    max_test_examples: int | None,
    seed: int,
) -> tuple[Task, dict[str, Any]]:
    """One task from ``root/<group>/<name>/`` and what was checked (label counts, overlaps)."""
    folder = root / spec.group / spec.name
    if not folder.is_dir():
        raise _missing_tasks_error(root, [spec])
    labels = read_labels(_file(folder, "labels"))
    train = _sentences(_file(folder, "train"), labels)
    test = _sentences(_file(folder, "test"), labels)
    test_sentences = {sentence for sentence, _ in test}
    shared = sum(sentence in test_sentences for sentence, _ in train)
    if shared:
        logger.warning("cl-benchmark %s: %d of %d training sentences also occur in test.json (they never enter "
                       "the eval split)", spec.name, shared, len(train))
    eval_size = min(max_test_examples or DEFAULT_EVAL, max(1, len(train) // 5))
    held = _eval_indices(train, test_sentences, eval_size, spec.name)

    def examples(pairs: Sequence[tuple[str, str]]) -> tuple[Example, ...]:
        return tuple(Example(build_prompt(spec, labels, sentence), label) for sentence, label in pairs)

    pool = examples([pair for i, pair in enumerate(train) if i not in held])
    task = Task(
        name=spec.name,
        train=subsample(pool, max_train_examples, seed=seed, key=f"cl-benchmark/{spec.name}/train"),
        test=subsample(examples(test), max_test_examples, seed=seed, key=f"cl-benchmark/{spec.name}/test"),
        metric="accuracy",
        max_new_tokens=MAX_NEW_TOKENS,
        eval=examples([train[i] for i in sorted(held)]),
    )
    overlap = len({e.prompt for e in task.eval} & {e.prompt for e in task.test})
    if overlap:  # cannot happen by construction; a check, not an assumption
        logger.warning("cl-benchmark %s: %d eval prompt(s) also occur in the test split", spec.name, overlap)
    return task, {"train_test_shared": shared, "eval_test_overlap": overlap}


def _missing_tasks_error(root: Path, specs: Sequence[ClTaskSpec]) -> DataError:
    paths = ", ".join(str(root / spec.group / spec.name) for spec in specs)
    return DataError(
        f"{paths}: task folder{'s' if len(specs) > 1 else ''} not found; expected {_LAYOUT}. "
        f"Leave the task out with tasks=[...] (--tasks), or {_HOW_TO_POINT}"
    )


def majority_rate(task: Task) -> float:
    """Share of the most frequent answer in the task's test split (what always answering it would score)."""
    counts = Counter(example.answer for example in task.test)
    return max(counts.values()) / len(task.test)


@register_stream("cl-benchmark", f"O-LoRA's CL benchmark (classification, 15 tasks) read from disk "
                                 f"(--data-dir or ${DATA_ENV}; data from {OLORA_URL})")
def load_cl_benchmark(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    tasks: str | Sequence[str] | None = None,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    seed: int = 0,
) -> Stream:
    """The ``cl-benchmark`` stream.

    Args:
        data_dir: the ``CL_Benchmark`` folder; default ``$LOSIA_CL_DATA``.
        tasks: subset and order (list or comma-separated string, case-insensitive); default all 15 in
            O-LoRA's long-sequence order.  Tasks left out need not be on disk.
        max_train_examples: at most this many training examples per task (``None``: all but the eval
            slice), drawn with ``seed``.
        max_test_examples: at most this many test examples per task (``None``: all), drawn with ``seed``;
            also the size of the eval slice held out from train (``None``: 200), at most a fifth of
            ``train.json``.
        seed: seed of the train and test subsampling (the eval slice does not depend on it).
    """
    max_train_examples = check_limit("max_train_examples", max_train_examples)
    max_test_examples = check_limit("max_test_examples", max_test_examples)
    seed = check_seed(seed)
    chosen = select_tasks(CL_TASK_NAMES, tasks, kind="CL benchmark task")
    root = resolve_root(data_dir)
    specs = {spec.name: spec for spec in CL_TASKS}
    missing = [specs[name] for name in chosen if not (root / specs[name].group / name).is_dir()]
    if missing:
        raise _missing_tasks_error(root, missing)
    loaded = [load_cl_task(root, specs[name], max_train_examples=max_train_examples,
                           max_test_examples=max_test_examples, seed=seed) for name in chosen]
    logger.info("CL benchmark from %s: %s", root, ", ".join(
        f"{t.name} ({len(t.train)}/{len(t.eval)}/{len(t.test)})" for t, _ in loaded))
    return Stream(name="cl-benchmark", tasks=tuple(t for t, _ in loaded),
                  description=f"O-LoRA's CL benchmark read from {root}")
