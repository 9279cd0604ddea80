"""The test references of each task, read back from a run's prediction files, and their majority-class baseline.

The trainer writes one line per test example after every stage (``<method>/predictions/stage<i>-<task>.jsonl``
and, for the base model, ``base/predictions/stage0-<task>.jsonl``), each with the example's ``reference``.
Every stage evaluates the same test examples, so any one of these files gives the task's references; the
base model's file is read first, then each method's in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from losia_cl.errors import DataError
from losia_cl.metrics.baselines import MajorityBaseline, majority_baseline

from .loading import RunData

__all__ = ["majority_baselines", "read_references", "reference_file"]


def reference_file(run: RunData, task: str) -> Path | None:
    """The first prediction file of ``task`` in ``run`` (base model first), or ``None`` when there is none."""
    candidates = [run.path / "base" / "predictions" / f"stage0-{task}.jsonl"]
    for method in run.results:
        folder = run.path / method / "predictions"
        candidates += [folder / f"stage{i}-{task}.jsonl" for i in range(1, len(run.tasks) + 1)]
    return next((path for path in candidates if path.is_file()), None)


def read_references(path: Path) -> list[str]:
    """The ``reference`` of every line of a prediction file; a malformed line raises DataError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from None
    references = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        reference = record.get("reference") if isinstance(record, dict) else None
        if not isinstance(reference, str):
            raise DataError(f"{path}:{number}: key 'reference' is missing or not a string")
        references.append(reference)
    if not references:
        raise DataError(f"{path}: no prediction lines (was writing it interrupted?)")
    return references


def majority_baselines(runs: Sequence[RunData]) -> dict[str, list[MajorityBaseline]]:
    """Per task, the majority-class baseline of its test references in each run that has a prediction file."""
    out: dict[str, list[MajorityBaseline]] = {}
    for task in runs[0].tasks:
        found = []
        for run in runs:
            path = reference_file(run, task)
            if path is not None:
                found.append(majority_baseline(read_references(path)))
        out[task] = found
    return out
