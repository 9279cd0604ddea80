r"""Paired comparisons of two methods over seeds: mean difference, t-interval, paired t-test, Wilcoxon, power.

Within one seed every method sees the same data in the same order and starts from the same model, so the
per-seed results of two methods form pairs ``(a_k, b_k)``.  Their differences ``d_k = a_k − b_k``
(``k = 1..n``) carry the comparison:

* mean difference ``d̄``, sample standard deviation ``s_d`` (``ddof = 1``);
* 95 % t-interval ``d̄ ± t_{0.975, n−1} · s_d / √n``;
* paired t-test (``scipy.stats.ttest_rel``): ``t = d̄ / (s_d / √n)``, two-sided p-value with ``n − 1``
  degrees of freedom — the test the verdicts and the Holm correction use;
* Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided, zero differences dropped), reported beside
  it only when ``n`` allows: with ``n`` non-zero differences its exact p-value is at least ``2 / 2ⁿ``, which
  is below ``α = 0.05`` only from ``n = 6`` (:func:`wilcoxon_min_n`); with fewer it could never reject and
  is not computed;
* minimum detectable effect: the ``|δ|`` the paired t-test detects with 80 % power at two-sided ``α``
  (:func:`minimum_detectable_effect`), from ``s_d`` and ``n``;
* percentile bootstrap interval of ``d̄`` only from :data:`BOOTSTRAP_MIN_SEEDS` (10) differences: with fewer
  the ``n^n`` resamples are too few to estimate the sampling distribution (with 3 seeds the 95 % percentile
  interval is the range of the three differences), so only the t-interval is given.

The t-test needs ``n ≥ 2`` and differences that are not all equal: with ``s_d = 0`` (up to rounding,
``s_d ≤ 10⁻¹² · max|d_k|``) the statistic is undefined and ``t``, ``p`` and the detectable effect are ``None``
(the interval collapses to ``d̄``).  Values that are ``None`` in either run of a pair (a metric undefined for
that run) leave the pair out.

Pure functions over lists of numbers; numpy and scipy only (no torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from losia_cl.errors import DataError

__all__ = ["ALPHA", "BOOTSTRAP_MIN_SEEDS", "CONFIDENCE", "POWER", "PairedDifference", "bootstrap_interval",
           "detectable_effect_size", "minimum_detectable_effect", "paired_difference", "paired_power", "verdict",
           "wilcoxon_min_n"]

#: confidence level of the intervals.
CONFIDENCE = 0.95
#: significance level of the verdicts.
ALPHA = 0.05
#: power at which the minimum detectable effect is stated.
POWER = 0.80
#: bootstrap resamples used by default.
RESAMPLES = 10_000
#: fewest differences for which a bootstrap interval is computed.
BOOTSTRAP_MIN_SEEDS = 10


@dataclass(frozen=True)
class PairedDifference:
    """The paired comparison of ``a`` against ``b`` (differences ``a − b``) over ``n`` seeds.

    Attributes:
        differences: ``a_k − b_k`` of the seeds where both values are defined, in seed order.
        mean: ``d̄`` (``None`` when no pair is defined).
        ci: the 95 % t-interval of ``d̄`` (``None`` when ``n < 2``).
        t: the paired t statistic (``None`` when ``n < 2`` or ``s_d = 0``).
        p: its two-sided p-value (``None`` likewise).
        bootstrap_ci: the percentile bootstrap interval of ``d̄`` (``None`` when ``n < BOOTSTRAP_MIN_SEEDS``).
        sd: ``s_d`` (``None`` when ``n < 2``; 0 when every difference is equal).
        wilcoxon_p: two-sided p-value of the Wilcoxon signed-rank test (``None`` when fewer than
            :func:`wilcoxon_min_n` differences are non-zero).
        mde: the minimum detectable ``|δ|`` of the paired t-test at two-sided ``ALPHA`` and ``POWER``
            (``None`` when ``t`` is).
    """

    differences: tuple[float, ...]
    mean: float | None
    ci: tuple[float, float] | None
    t: float | None
    p: float | None
    bootstrap_ci: tuple[float, float] | None
    sd: float | None = None
    wilcoxon_p: float | None = None
    mde: float | None = None

    @property
    def n(self) -> int:
        return len(self.differences)

    def significant(self, alpha: float = ALPHA) -> bool:
        """Whether the paired t-test rejects "no difference" at level ``alpha`` (uncorrected)."""
        return self.p is not None and self.p < alpha

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "differences": list(self.differences), "mean": self.mean,
                "ci": list(self.ci) if self.ci else None, "t": self.t, "p": self.p,
                "bootstrap_ci": list(self.bootstrap_ci) if self.bootstrap_ci else None, "sd": self.sd,
                "wilcoxon_p": self.wilcoxon_p, "mde": self.mde}


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


def wilcoxon_min_n(alpha: float = ALPHA) -> int:
    """Fewest non-zero differences for which the exact two-sided signed-rank p-value can be below ``alpha``.

    The smallest exact p-value of ``n`` differences (all of one sign) is ``2 · 2⁻ⁿ``; this is the least ``n``
    with ``2 · 2⁻ⁿ < alpha`` (6 for ``alpha = 0.05``).
    """
    if not 0.0 < alpha < 1.0:
        raise DataError(f"wilcoxon_min_n: alpha must lie in (0, 1), got {alpha!r}")
    n = 1
    while 2.0 * 0.5**n >= alpha:
        n += 1
    return n


def paired_power(effect: float, sd: float, n: int, *, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` against a true mean difference ``effect``.

    With ``df = n − 1``, ``c = t_{1−α/2, df}`` and noncentrality ``λ = effect · √n / sd``, the power is
    ``P(T > c) + P(T < −c)`` for ``T`` noncentral t with ``df`` and ``λ`` (``scipy.stats.nct``).
    """
    _check_design(sd, n, alpha)
    from scipy import stats

    df = n - 1
    critical = float(stats.t.ppf(1.0 - alpha / 2, df))
    nc = abs(effect) * math.sqrt(n) / sd
    # P(T < −c | λ) = P(T > c | −λ): both tails through sf, which stays finite far in the tails
    return float(stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc))


@lru_cache(maxsize=256)
def detectable_effect_size(n: int, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """The standardized effect ``|δ| / s_d`` the two-sided paired t-test detects with ``power`` (``n ≥ 2``).

    The root in ``λ`` of ``paired_power = power`` divided by ``√n`` (Cohen's ``d_z``); e.g. 3.26 for
    ``n = 3``, 1.00 for ``n = 10`` at ``alpha = 0.05``, ``power = 0.8``.
    """
    _check_design(1.0, n, alpha)
    if not alpha < power < 1.0:
        raise DataError(f"detectable_effect_size: power must lie in (alpha, 1), got {power!r}")
    from scipy import optimize

    def gap(nc: float) -> float:
        return paired_power(nc / math.sqrt(n), 1.0, n, alpha=alpha) - power

    high = 1.0
    while gap(high) < 0:
        high *= 2.0
    nc = float(optimize.brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-12))
    return nc / math.sqrt(n)


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest ``|δ|`` a paired t-test over ``n`` differences with standard deviation ``sd`` detects with
    ``power`` at two-sided ``alpha``: ``detectable_effect_size(n) · sd``; ``None`` when ``n < 2`` or ``sd = 0``.

    It is stated from the *observed* ``s_d``, itself an estimate from ``n`` values: read it as the scale of
    effect the design can see, not as an exact threshold.
    """
    if n < 2 or sd == 0:
        return None
    return detectable_effect_size(n, alpha=alpha, power=power) * sd


def _check_design(sd: float, n: int, alpha: float) -> None:
    if n < 2:
        raise DataError(f"power: a paired t-test needs at least 2 differences, got {n}")
    if not (math.isfinite(sd) and sd > 0):
        raise DataError(f"power: the standard deviation of the differences must be positive, got {sd!r}")
    if not 0.0 < alpha < 1.0:
        raise DataError(f"power: alpha must lie in (0, 1), got {alpha!r}")


def paired_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
    power: float = POWER,
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
    wilcoxon_p = None
    if int(np.count_nonzero(d)) >= wilcoxon_min_n(alpha):
        wilcoxon_p = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    boot = None
    if n >= BOOTSTRAP_MIN_SEEDS:
        boot = bootstrap_interval(d.tolist(), confidence=confidence, resamples=resamples, seed=seed)
    mde = minimum_detectable_effect(sd, n, alpha=alpha, power=power)
    return PairedDifference(tuple(d.tolist()), mean, (mean - half, mean + half), t, p, boot, sd, wilcoxon_p, mde)


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def _p(value: float) -> str:
    return f"{value:.3g}"


def verdict(
    claim: str,
    difference: PairedDifference,
    *,
    symbol: str,
    a: str,
    b: str,
    higher_is_better: bool = True,
    p_adjusted: float | None = None,
    correction: str = "Holm",
    alpha: float = ALPHA,
    power: float = POWER,
    digits: int = 3,
) -> str:
    """One line saying whether ``claim`` ("a beats b") is shown, which method the estimate favours, and what
    the design could detect, e.g.

    ``LoSiA forgets less than LoRA: not shown; the estimate favours LoRA (ΔBWT = −0.017, 95% t-interval
    [−0.057, +0.022], 3 seeds), not significant after Holm (p = 0.199, p_adj = 1); with 3 seeds this design
    detects |ΔBWT| ≥ 0.052 (paired t-test, α = 0.05, 80% power)``.

    ``a``, ``b`` name the methods in the order of :func:`paired_difference`; ``symbol`` names the compared
    quantity; ``higher_is_better`` says which sign of ``a − b`` supports the claim.  The decision uses
    ``p_adjusted`` (the p-value after ``correction`` across the report's tests) when given, else the
    uncorrected p.  The answer is ``yes`` (significant, in the claim's direction), ``no`` (significant the
    other way) or ``not shown`` (not significant: the data cannot tell, whichever way the estimate leans).
    """
    n = difference.n
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if difference.mean is None:
        return f"{claim}: not measured (no seed defines {symbol})"
    delta = f"\u0394{symbol} = {_signed(difference.mean, digits)}"
    if difference.mean == 0:
        favours = "the estimate favours neither"
    else:
        favours = f"the estimate favours {a if (difference.mean > 0) == higher_is_better else b}"
    if n < 2:
        return f"{claim}: untested; {favours} ({delta}, {seeds}; a test needs at least 2 seeds)"
    if difference.p is None:
        if difference.mean == 0:
            return f"{claim}: no difference ({delta} in every seed, {seeds})"
        return (f"{claim}: untestable; {favours} by the same amount in every seed ({delta}, {seeds}); "
                "a t-test needs differences that vary")
    low, high = difference.ci  # type: ignore[misc]
    detail = f"{delta}, 95% t-interval [{_signed(low, digits)}, {_signed(high, digits)}], {seeds}"
    decisive = difference.p if p_adjusted is None else p_adjusted
    after = "" if p_adjusted is None else f" after {correction}"
    ps = f"p = {_p(difference.p)}" + ("" if p_adjusted is None else f", p_adj = {_p(p_adjusted)}")
    if decisive < alpha:
        answer = "yes" if (difference.mean > 0) == higher_is_better else "no"
        significance = f"significant{after} ({ps})"
    else:
        answer = "not shown"
        significance = f"not significant{after} ({ps})"
    line = f"{claim}: {answer}; {favours} ({detail}), {significance}"
    if difference.mde is not None:
        line += (f"; with {seeds} this design detects |\u0394{symbol}| \u2265 {difference.mde:.{digits}f} "
                 f"(paired t-test, \u03b1 = {alpha:g}, {power:.0%} power)")
    return line
