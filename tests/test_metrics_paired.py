"""Paired comparisons over seeds: the numbers equal scipy's and the textbook formulas; verdicts say what they show
and which method the estimate favours."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from losia_cl.errors import DataError
from losia_cl.metrics.paired import (bootstrap_interval, detectable_effect_size, minimum_detectable_effect,
                                     paired_difference, verdict, wilcoxon_min_n)

A = [-0.20, -0.35, -0.10, -0.28, -0.15]
B = [-0.30, -0.38, -0.25, -0.31, -0.33]


def test_t_statistic_p_value_and_interval_equal_scipy_and_the_formula():
    diff = paired_difference(A, B)
    reference = stats.ttest_rel(A, B)
    assert diff.t == pytest.approx(float(reference.statistic), rel=1e-12)
    assert diff.p == pytest.approx(float(reference.pvalue), rel=1e-12)
    d = np.subtract(A, B)
    assert diff.differences == pytest.approx(d.tolist())
    assert diff.mean == pytest.approx(0.098)  # (0.10 + 0.03 + 0.15 + 0.03 + 0.18) / 5
    sd = math.sqrt(sum((x - 0.098) ** 2 for x in d) / 4)
    assert diff.t == pytest.approx(0.098 / (sd / math.sqrt(5)), rel=1e-9)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t_{0.975, 4}
    assert diff.ci == pytest.approx((0.098 - half, 0.098 + half), rel=1e-9)
    low, high = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert diff.ci == pytest.approx((low, high), rel=1e-9)


def test_bootstrap_interval_only_from_ten_seeds_reproducible_and_near_the_t_interval():
    assert paired_difference(A, B).bootstrap_ci is None  # 5 seeds: the t-interval only
    nine = np.random.default_rng(1).normal(0.05, 0.1, size=9).tolist()
    assert paired_difference(nine, [0.0] * 9).bootstrap_ci is None
    ten = np.random.default_rng(1).normal(0.05, 0.1, size=10).tolist()
    diff = paired_difference(ten, [0.0] * 10, seed=3)
    assert diff.bootstrap_ci == paired_difference(ten, [0.0] * 10, seed=3).bootstrap_ci
    low, high = diff.bootstrap_ci
    assert min(ten) <= low < diff.mean < high <= max(ten)
    # with three differences the 95% percentile interval is their range: why it is not reported below 10 seeds
    three = [0.01, -0.04, 0.02]
    assert bootstrap_interval(three) == pytest.approx((min(three), max(three)))
    many = np.random.default_rng(0).normal(0.05, 0.1, size=400)
    wide = paired_difference(many.tolist(), [0.0] * 400)
    (bl, bh), (tl, th) = wide.bootstrap_ci, wide.ci
    assert abs(bl - tl) < 0.003 and abs(bh - th) < 0.003  # same interval up to resampling noise


def test_wilcoxon_only_where_it_could_reject_and_equal_to_the_exact_signed_rank_p():
    assert wilcoxon_min_n(0.05) == 6 and wilcoxon_min_n(0.01) == 8  # 2/2^6 = 0.031 < 0.05; 2/2^7 = 0.0156 >= 0.01
    assert paired_difference(A, B).wilcoxon_p is None  # 5 differences: the smallest exact p is 2/32 = 0.0625
    a = [0.31, 0.42, 0.25, 0.5, 0.33, 0.29]
    b = [0.30, 0.40, 0.22, 0.46, 0.28, 0.23]  # d = .01 .02 .03 .04 .05 .06: all positive, ranks 1..6
    assert paired_difference(a, b).wilcoxon_p == pytest.approx(2 / 2**6)
    b[0] = 0.32  # d_1 = −0.01: W+ = 2+3+4+5+6 = 20; P(W+ ≥ 20) = #{subsets of 1..6 with sum ≥ 20} / 64 = 2/64
    assert paired_difference(a, b).wilcoxon_p == pytest.approx(2 * 2 / 64)
    b[0] = 0.31  # a zero difference is dropped: five left, too few to test
    assert paired_difference(a, b).wilcoxon_p is None


def _power(effect, sd, n, alpha=0.05):  # the power of the paired t-test, both tails written out
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)
    nc = effect * math.sqrt(n) / sd
    return stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_minimum_detectable_effect_has_80_percent_power(n):
    sd = 0.016
    mde = minimum_detectable_effect(sd, n)
    assert _power(mde, sd, n) == pytest.approx(0.80, abs=1e-6)
    assert _power(0.9 * mde, sd, n) < 0.8 < _power(1.1 * mde, sd, n)
    # and by simulation: paired t-tests on differences drawn with mean = MDE reject about 80% of the time
    rng = np.random.default_rng(n)
    d = rng.normal(mde, sd, size=(40_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert rejected == pytest.approx(0.80, abs=0.01)


def test_minimum_detectable_effect_known_values_and_undefined_cases():
    assert detectable_effect_size(10) == pytest.approx(0.996, abs=1e-3)  # G*Power: d_z = 0.996 for n = 10
    # three seeds with s_d = 0.016 (BWT differences on TRACE): |ΔBWT| of about 0.05 is what they can detect
    assert minimum_detectable_effect(0.016, 3) == pytest.approx(0.052, abs=1e-3)
    assert minimum_detectable_effect(0.0, 3) is None and minimum_detectable_effect(0.1, 1) is None
    diff = paired_difference(A, B)
    assert diff.sd == pytest.approx(float(np.std(np.subtract(A, B), ddof=1)))
    assert diff.mde == pytest.approx(minimum_detectable_effect(diff.sd, 5))
    assert paired_difference([0.5, 0.7, 0.9], [0.25, 0.45, 0.65]).mde is None
    with pytest.raises(DataError, match="power must lie"):
        detectable_effect_size(3, power=0.01)


def test_undefined_values_leave_their_pair_out_and_small_samples_are_not_tested():
    diff = paired_difference([0.5, None, 0.7], [0.1, 0.2, None])
    assert diff.differences == pytest.approx((0.4,)) and diff.n == 1
    assert diff.t is None and diff.p is None and diff.ci is None and diff.bootstrap_ci is None
    assert paired_difference([None], [1.0]).mean is None


def test_equal_differences_have_no_t_test():
    diff = paired_difference([0.5, 0.7, 0.9], [0.25, 0.45, 0.65])
    assert diff.mean == pytest.approx(0.25)
    assert diff.t is None and diff.p is None
    assert diff.ci == pytest.approx((0.25, 0.25))


def test_bad_input_names_the_problem():
    with pytest.raises(DataError, match="3 values against 2"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(DataError, match="not finite"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(DataError, match="at least 2"):
        bootstrap_interval([0.1])


@pytest.mark.parametrize(
    ("a", "b", "p_adj", "expected"),
    [
        (A, B, None, "LoSiA forgets less than LoRA: yes; the estimate favours LoSiA (\u0394BWT = +0.098, 95% t-interval "
         "[+0.013, +0.183], 5 seeds), significant (p = 0.0327); with 5 seeds this design detects |\u0394BWT| \u2265 "
         "0.115 (paired t-test, \u03b1 = 0.05, 80% power)"),
        (B, A, 0.03, "LoSiA forgets less than LoRA: no; the estimate favours LoRA (\u0394BWT = \u22120.098, 95% "
         "t-interval [\u22120.183, \u22120.013], 5 seeds), significant after Holm (p = 0.0327, p_adj = 0.03); with 5 "
         "seeds this design detects |\u0394BWT| \u2265 0.115 (paired t-test, \u03b1 = 0.05, 80% power)"),
        (A, B, 0.2, "LoSiA forgets less than LoRA: not shown; the estimate favours LoSiA (\u0394BWT = +0.098, 95% "
         "t-interval [+0.013, +0.183], 5 seeds), not significant after Holm (p = 0.0327, p_adj = 0.2); with 5 seeds "
         "this design detects |\u0394BWT| \u2265 0.115 (paired t-test, \u03b1 = 0.05, 80% power)"),
        ([-0.2, -0.3, -0.1], [-0.25, -0.2, -0.2], 1.0,
         "LoSiA forgets less than LoRA: not shown; the estimate favours LoSiA (\u0394BWT = +0.017, 95% t-interval "
         "[\u22120.242, +0.275], 3 seeds), not significant after Holm (p = 0.808, p_adj = 1); with 3 seeds this design "
         "detects |\u0394BWT| \u2265 0.340 (paired t-test, \u03b1 = 0.05, 80% power)"),
        ([-0.2], [-0.3], None, "LoSiA forgets less than LoRA: untested; the estimate favours LoSiA (\u0394BWT = +0.100, "
         "1 seed; a test needs at least 2 seeds)"),
        ([-0.2, -0.3], [-0.2, -0.3], None,
         "LoSiA forgets less than LoRA: no difference (\u0394BWT = +0.000 in every seed, 2 seeds)"),
        ([-0.1, -0.2], [-0.2, -0.3], None, "LoSiA forgets less than LoRA: untestable; the estimate favours LoSiA by the "
         "same amount in every seed (\u0394BWT = +0.100, 2 seeds); a t-test needs differences that vary"),
    ],
)
def test_verdicts(a, b, p_adj, expected):
    # numbers worked out by hand: d = A − B = (.10, .03, .15, .03, .18), s_d = 0.0683, t = 3.21;
    # MDE = 1.682 · s_d for 5 seeds (d_z at 80% power), 3.264 · s_d for 3
    line = verdict("LoSiA forgets less than LoRA", paired_difference(a, b), symbol="BWT", a="LoSiA", b="LoRA",
                   p_adjusted=p_adj)
    assert line == expected


def test_the_favoured_method_is_named_whichever_way_the_claim_points():
    diff = paired_difference([0.1, 0.15, 0.12, 0.11], [0.4, 0.5, 0.45, 0.42])  # forgetting: lower is better
    line = verdict("a forgets less than b", diff, symbol="F", a="a", b="b", higher_is_better=False)
    assert line.startswith("a forgets less than b: yes; the estimate favours a")
    # the complaint this guards against: "LoSiA forgets less than LoRA: not significant" when LoRA is ahead
    lean = paired_difference([-0.02, -0.01, 0.0], [0.0, 0.01, 0.005])
    line = verdict("LoSiA forgets less than LoRA", lean, symbol="BWT", a="LoSiA", b="LoRA", p_adjusted=0.9)
    assert "not shown; the estimate favours LoRA" in line and "not significant after Holm" in line
