"""Trivial baselines of a task's test split: what a model that ignores the prompt would score.

A score of 0 by exact match before a task is trained (the base model, or the model after the earlier tasks)
says the model never produced the reference verbatim; it does not say the model knows less than a
constant guess.  The majority-class baseline puts such a floor in scale: the share of test examples whose
reference is the split's most frequent reference, i.e. the exact-match accuracy of always answering it.

Pure function over the references; no numpy needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from losia_cl.errors import DataError

__all__ = ["MajorityBaseline", "majority_baseline"]


@dataclass(frozen=True)
class MajorityBaseline:
    """The most frequent reference of a split and its share.

    Attributes:
        answer: the most frequent reference, whitespace stripped (ties: the first in sorted order).
        count: how many examples have it.
        total: how many examples the split has.
    """

    answer: str
    count: int
    total: int

    @property
    def share(self) -> float:
        """``count / total``: the exact-match accuracy of always answering :attr:`answer`."""
        return self.count / self.total


def majority_baseline(references: Sequence[str]) -> MajorityBaseline:
    """The majority-class baseline of ``references`` (one reference string per test example).

    References are compared after stripping leading and trailing whitespace, as the ``accuracy`` scorer
    compares answers.  An empty split or a reference that is not a string raises
    :class:`~losia_cl.errors.DataError`.
    """
    if not references:
        raise DataError("majority baseline: the split has no references")
    stripped = []
    for i, ref in enumerate(references):
        if not isinstance(ref, str):
            raise DataError(f"majority baseline: reference #{i + 1} is {type(ref).__name__}, not a string")
        stripped.append(ref.strip())
    counts = Counter(stripped)
    top = max(counts.values())
    answer = min(a for a, c in counts.items() if c == top)
    return MajorityBaseline(answer, top, len(stripped))
