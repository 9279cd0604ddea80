r"""Paired comparisons of two methods over seeds: mean difference, t-interval, paired t-test, bootstrap.

Within one seed every method sees the same data in the same order and starts from the same model, so the
per-seed results of two methods form pairs ``(a_k, b_k)``.  Their differences ``d_k = a_k − b_k``
(``k = 1..n``) carry the comparison:

* mean difference ``d̄``, sample standard deviation ``s_d`` (``ddof = 1``);
* 95 % t-interval ``d̄ ± t_{0.975, n−1} · s_d / √n``;
* paired t-test (``scipy.stats.ttest_rel``): ``t = d̄ / (s_d / √n)``, two-sided p-value with ``n − 1``
  degrees of freedom;
* percentile bootstrap interval of ``d̄``: ``resamples`` draws of ``n`` differences with replacement
  (seeded, so the interval is reproducible), the 2.5th and 97.5th percentiles of their means.

The t-test needs ``n ≥ 2`` and differences that are not all equal: with ``s_d = 0`` (up to rounding,
``s_d ≤ 10⁻¹² · max|d_k|``) the statistic is undefined and ``t``, ``p`` are ``None`` (the interval collapses to ``d̄``).  Values that are ``None`` in
either run of a pair (a metric undefined for that run) leave the pair out.

Pure functions over lists of numbers; numpy and scipy only (no torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from losia_cl.errors import DataError

__all__ = ["ALPHA", "CONFIDENCE", "PairedDifference", "bootstrap_interval", "paired_difference", "verdict"]

#: confidence level of the intervals.
CONFIDENCE = 0.95
#: significance level of the verdicts.
ALPHA = 0.05
#: bootstrap resamples used by default.
RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """The paired comparison of ``a`` against ``b`` (differences ``a − b``) over ``n`` seeds.

    Attributes:
        differences: ``a_k − b_k`` of the seeds where both values are defined, in seed order.
        mean: ``d̄`` (``None`` when no pair is defined).
        ci: the 95 % t-interval of ``d̄`` (``None`` when ``n < 2``).
        t: the paired t statistic (``None`` when ``n < 2`` or ``s_d = 0``).
        p: its two-sided p-value (``None`` likewise).
        bootstrap_ci: the percentile bootstrap interval of ``d̄`` (``None`` when ``n < 2``).
    """

    differences: tuple[float, ...]
    mean: float | None
    ci: tuple[float, float] | None
    t: float | None
    p: float | None
    bootstrap_ci: tuple[float, float] | None

    @property
    def n(self) -> int:
        return len(self.differences)

    def significant(self, alpha: float = ALPHA) -> bool:
        """Whether the paired t-test rejects "no difference" at level ``alpha``."""
        return self.p is not None and self.p < alpha

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "differences": list(self.differences), "mean": self.mean,
                "ci": list(self.ci) if self.ci else None, "t": self.t, "p": self.p,
                "bootstrap_ci": list(self.bootstrap_ci) if self.bootstrap_ci else None}


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise DataError(f"paired comparison: {len(a)} values against {len(b)}; give one value per seed to both")
    kept = [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None]
    for x, y in kept:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DataError(f"paired comparison: value {x if not math.isfinite(x) else y} is not finite")
    xs = np.array([x for x, _ in kept], dtype=np.float64)
    ys = np.array([y for _, y in kept], dtype=np.float64)
    return xs, ys


def bootstrap_interval(
    differences: Sequence[float], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (at least two of them)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        raise DataError(f"bootstrap: needs at least 2 differences, got {d.size}")
    if resamples < 1:
        raise DataError(f"bootstrap: resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """Compare ``a`` with ``b`` seed by seed (``a[k]`` and ``b[k]`` come from the same seed)."""
    xs, ys = _pairs(a, b)
    d = xs - ys
    n = int(d.size)
    if n == 0:
        return PairedDifference((), None, None, None, None, None)
    mean = float(math.fsum(d.tolist()) / n)
    if n < 2:
        return PairedDifference(tuple(d.tolist()), mean, None, None, None, None)
    from scipy import stats

    sd = float(np.std(d, ddof=1))
    if sd <= 1e-12 * max(1.0, float(np.abs(d).max())):  # equal differences up to rounding
        sd = 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    t = p = None
    if sd > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision notice for near-equal data
            result = stats.ttest_rel(xs, ys)
        t, p = float(result.statistic), float(result.pvalue)
    boot = bootstrap_interval(d.tolist(), confidence=confidence, resamples=resamples, seed=seed)
    return PairedDifference(tuple(d.tolist()), mean, (mean - half, mean + half), t, p, boot)


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def verdict(
    claim: str,
    difference: PairedDifference,
    *,
    symbol: str,
    higher_is_better: bool = True,
    opposite: str | None = None,
    alpha: float = ALPHA,
    digits: int = 3,
) -> str:
    """One line saying whether ``claim`` holds, e.g.

    ``LoSiA forgets less than LoRA: not significant (ΔBWT = +0.030, 95% CI [−0.020, +0.080], 3 seeds)``.

    ``claim`` is the statement "a beats b" (a, b in the order of :func:`paired_difference`); ``symbol`` names
    the compared quantity; ``higher_is_better`` says which sign of ``a − b`` supports the claim;
    ``opposite`` is the claim's reverse, used when the test is significant the other way.
    """
    n = difference.n
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if difference.mean is None:
        return f"{claim}: not measured (no seed defines {symbol})"
    delta = f"\u0394{symbol} = {_signed(difference.mean, digits)}"
    if n < 2:
        return f"{claim}: untested ({delta}, {seeds}; a test needs at least 2 seeds)"
    low, high = difference.ci  # type: ignore[misc]
    detail = f"{delta}, 95% CI [{_signed(low, digits)}, {_signed(high, digits)}]"
    if difference.p is None:
        if difference.mean == 0:
            return f"{claim}: no difference ({delta} in every seed, {seeds})"
        return f"{claim}: untestable ({delta} in every seed, zero variance, {seeds})"
    detail += f", p = {difference.p:.3g}, {seeds}"
    if not difference.significant(alpha):
        return f"{claim}: not significant ({detail})"
    supports = (difference.mean > 0) == higher_is_better
    if supports:
        return f"{claim}: yes, significant ({detail})"
    return f"{claim}: no, {opposite or 'the reverse'} is significant ({detail})"
