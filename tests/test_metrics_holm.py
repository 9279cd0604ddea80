"""Holm's step-down correction: equal to the sequential procedure written out, and to hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest

from losia_cl.errors import DataError
from losia_cl.metrics.holm import holm


def _holm_rejects(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm (1979) as a procedure: walk the sorted p-values, reject while p_(k) < alpha / (m - k + 1)."""
    m = len(pvalues)
    rejected = [False] * m
    for k, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        if pvalues[i] >= alpha / (m - k):
            break
        rejected[i] = True
    return rejected


def test_hand_worked_vector():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.06, 0.04·1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == [0.2]  # one test: nothing to correct


def test_none_passes_through_and_does_not_count():
    assert holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])
    assert holm([None, None]) == [None, None] and holm([]) == []


@pytest.mark.parametrize("seed", range(5))
def test_decisions_equal_the_step_down_procedure_and_bound_bonferroni(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.01, 6), rng.uniform(0, 1, 24)]).tolist()
    adjusted = holm(p)
    for alpha in (0.01, 0.05, 0.1):
        assert [q < alpha for q in adjusted] == _holm_rejects(p, alpha)
    m = len(p)
    assert all(x <= q <= min(1.0, m * x) + 1e-15 for x, q in zip(p, adjusted))  # never below raw, never above Bonferroni
    order = np.argsort(p)
    assert np.all(np.diff(np.asarray(adjusted)[order]) >= 0)  # monotone in the raw p


def test_bad_p_values_are_named():
    with pytest.raises(DataError, match="p-value #2 is 1.5"):
        holm([0.1, 1.5])
    with pytest.raises(DataError, match="p-value #1 is nan"):
        holm([float("nan")])
