r"""Means, 95 % confidence intervals and Welch t-tests over seeds.

* mean ± CI: ``x̄ ± t_{0.975, n−1} · s / √n`` with ``s`` the sample standard
  deviation (``ddof = 1``) — :func:`summarize`;
* Welch's t-test of two methods: ``t = (x̄₁ − x̄₂) / √(s₁²/n₁ + s₂²/n₂)`` with
  the Welch–Satterthwaite degrees of freedom, two-sided — :func:`welch_p`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CONFIDENCE", "ALPHA", "Stat", "summarize", "welch_p"]

#: confidence level of the intervals.
CONFIDENCE = 0.95
#: significance level of the Welch t-tests.
ALPHA = 0.05


@dataclass(frozen=True)
class Stat:
    """Summary of one quantity over ``n`` seeds (``None`` values left out).

    ``half_width`` is the half width of the 95 % t-interval, ``None`` when
    ``n < 2``; ``mean`` is ``None`` when no seed has a value.
    """

    values: tuple[float, ...]
    mean: float | None
    half_width: float | None
    std: float | None

    @property
    def n(self) -> int:
        return len(self.values)


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE) -> Stat:
    """Mean and ``confidence`` t-interval half width of the defined ``values``."""
    vals = tuple(float(v) for v in values if v is not None)
    if not vals:
        return Stat(vals, None, None, None)
    n = len(vals)
    try:
        mean = math.fsum(vals) / n
    except OverflowError:  # values near the largest float
        mean = math.fsum(v / n for v in vals)
    if n < 2:
        return Stat(vals, mean, None, None)
    try:
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))
    except OverflowError:
        scale = max(abs(v - mean) for v in vals)
        std = scale * math.sqrt(math.fsum(((v - mean) / scale) ** 2 for v in vals) / (n - 1))
    return Stat(vals, mean, _t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n), std)


@lru_cache(maxsize=64)
def _t_quantile(q: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, df))


def welch_p(a: Stat, b: Stat) -> float | None:
    """Two-sided p-value of Welch's t-test between the seeds of ``a`` and ``b``.

    ``None`` when either has fewer than two values.  When both have zero
    variance the test is degenerate: ``p = 1`` for equal means, ``0`` otherwise.
    """
    if a.n < 2 or b.n < 2:
        return None
    assert a.std is not None and b.std is not None and a.mean is not None and b.mean is not None
    if a.std == 0.0 and b.std == 0.0:
        return 1.0 if a.mean == b.mean else 0.0
    from scipy import stats

    p = float(stats.ttest_ind(a.values, b.values, equal_var=False).pvalue)
    return None if math.isnan(p) else p
