r"""Means and 95 % confidence intervals over seeds.

* mean ± CI: ``x̄ ± t_{0.975, n−1} · s / √n`` with ``s`` the sample standard
  deviation (``ddof = 1``) — :func:`summarize`.

Methods are compared by paired tests on the per-seed differences (:mod:`.significance`), not by tests that
treat the seeds of two methods as independent samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CONFIDENCE", "ALPHA", "Stat", "summarize"]

#: confidence level of the intervals.
CONFIDENCE = 0.95
#: significance level of the tests (family-wise, after Holm's correction).
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
