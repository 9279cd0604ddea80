"""What the seeds can show: paired tests of every pair of methods on every metric, Holm-corrected as one family,
and the cells whose metric sits at a bound of its scale.

Within a seed every method starts from the same model and trains on the same examples in the same order, so
the per-seed values of two methods pair up (:mod:`losia_cl.metrics.paired`).  A report's family of tests is
every (pair of methods, metric) with a defined paired t-test; their p-values are adjusted together by Holm's
step-down procedure (:mod:`losia_cl.metrics.holm`).  The comparison table's marks and the paired section's
table and verdicts all read the same family (:func:`paired_family`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from losia_cl.metrics.continual import bound_state, metric_cells
from losia_cl.metrics.holm import holm
from losia_cl.metrics.paired import PairedDifference, paired_difference
from losia_cl.results import METRIC_KEYS

from .aggregate import MethodRuns

__all__ = ["MetricSpec", "PairedFamily", "PairedTest", "bound", "method_pairs", "paired_family", "paired_values"]


class MetricSpec(Protocol):
    """A compared quantity: a key of :meth:`MethodResult.metric`, its label and its better direction."""

    key: str
    label: str
    higher_is_better: bool


def method_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of ``methods``, LoSiA-family methods first (so differences read "LoSiA − other")."""
    ordered = [m for m in methods if m.startswith("losia")] + [m for m in methods if not m.startswith("losia")]
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]


def paired_values(a: MethodRuns, b: MethodRuns, key: str) -> tuple[list[float | None], list[float | None]]:
    """The values of ``key`` for the seeds both methods finished, in ``a``'s seed order."""
    by_seed = {s: r for s, r in zip(b.seeds, b.results)}
    pairs = [(r, by_seed[s]) for s, r in zip(a.seeds, a.results) if s in by_seed]
    return [x.metric(key) for x, _ in pairs], [y.metric(key) for _, y in pairs]


def bound(group: MethodRuns, key: str) -> str | None:
    """``"floor"`` or ``"ceiling"`` when every input of ``key`` sits at that bound in every seed, else ``None``.

    Exact-match metrics read cells of the score matrix (bounds 0 and 1); graded (``loglik_*``) metrics read the
    log-likelihood matrix (ceiling 0); probe KL has the floor 0 and probe kept the bounds 0 and 1.  Costs
    have no bound.
    """
    if key in METRIC_KEYS:
        cells = metric_cells(key, len(group.tasks))
        return bound_state([float(r.scores[i, j]) for r in group.results for i, j in cells], low=0.0, high=1.0)
    if key.startswith("loglik_") and key[len("loglik_"):] in METRIC_KEYS:
        matrices = [r.loglik_scores for r in group.results if r.loglik_scores is not None]
        cells = metric_cells(key[len("loglik_"):], len(group.tasks))
        return bound_state([float(m[i, j]) for m in matrices for i, j in cells], high=0.0)
    if key == "retention_kl":
        return bound_state([v for r in group.results if (v := r.metric(key)) is not None], low=0.0)
    if key == "retention_kept":
        return bound_state([v for r in group.results if (v := r.metric(key)) is not None], low=0.0, high=1.0)
    return None


@dataclass(frozen=True)
class PairedTest:
    """One row of the family: ``a − b`` on one metric, seed by seed.

    Attributes:
        a, b: the methods (differences are ``a − b``).
        key, label, higher_is_better: the metric.
        difference: the paired comparison (:class:`PairedDifference`).
        p_adjusted: the Holm-adjusted p of the paired t-test (``None`` when the test is undefined).
        bounds: the bound each method's metric sits at (``None`` when it does not).
    """

    a: str
    b: str
    key: str
    label: str
    higher_is_better: bool
    difference: PairedDifference
    p_adjusted: float | None
    bounds: tuple[str | None, str | None]

    @property
    def favours(self) -> str | None:
        """The method the mean difference favours (``None`` when it is 0 or undefined)."""
        mean = self.difference.mean
        if mean is None or mean == 0:
            return None
        return self.a if (mean > 0) == self.higher_is_better else self.b

    def significant(self, alpha: float) -> bool:
        """Whether the Holm-adjusted paired t-test rejects "no difference" at family-wise level ``alpha``."""
        return self.p_adjusted is not None and self.p_adjusted < alpha


@dataclass(frozen=True)
class PairedFamily:
    """Every paired test of a report, Holm-adjusted together; ``size`` counts the tests with a p-value."""

    tests: tuple[PairedTest, ...]

    @property
    def size(self) -> int:
        return sum(1 for t in self.tests if t.difference.p is not None)

    @property
    def max_seeds(self) -> int:
        return max((t.difference.n for t in self.tests), default=0)

    def get(self, key: str, x: str, y: str) -> PairedTest | None:
        """The test of metric ``key`` between ``x`` and ``y`` (in either order), if the family has it."""
        for t in self.tests:
            if t.key == key and {t.a, t.b} == {x, y}:
                return t
        return None


def paired_family(groups: Mapping[str, MethodRuns], metrics: Sequence[MetricSpec]) -> PairedFamily:
    """Paired tests of every pair of ``groups`` (:func:`method_pairs`) on every metric of ``metrics`` that both
    methods define in some common seed, with Holm-adjusted p-values over all of them."""
    found: list[tuple[str, str, MetricSpec, PairedDifference]] = []
    for a, b in method_pairs(list(groups)):
        for metric in metrics:
            xs, ys = paired_values(groups[a], groups[b], metric.key)
            diff = paired_difference(xs, ys)
            if diff.mean is not None:
                found.append((a, b, metric, diff))
    adjusted = holm([diff.p for _, _, _, diff in found])
    return PairedFamily(tuple(
        PairedTest(a, b, metric.key, metric.label, metric.higher_is_better, diff, p_adj,
                   (bound(groups[a], metric.key), bound(groups[b], metric.key)))
        for (a, b, metric, diff), p_adj in zip(found, adjusted)
    ))
