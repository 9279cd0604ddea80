"""Paired comparisons over seeds: the numbers equal scipy's and the textbook formulas; verdicts say what they show."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from losia_cl.errors import DataError
from losia_cl.metrics.paired import bootstrap_interval, paired_difference, verdict

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


def test_bootstrap_interval_is_reproducible_inside_the_data_and_near_the_t_interval_for_many_seeds():
    diff = paired_difference(A, B, seed=3)
    assert diff.bootstrap_ci == paired_difference(A, B, seed=3).bootstrap_ci
    low, high = diff.bootstrap_ci
    d = np.subtract(A, B)
    assert d.min() <= low < diff.mean < high <= d.max()
    many = np.random.default_rng(0).normal(0.05, 0.1, size=400)
    wide = paired_difference(many.tolist(), [0.0] * 400)
    (bl, bh), (tl, th) = wide.bootstrap_ci, wide.ci
    assert abs(bl - tl) < 0.003 and abs(bh - th) < 0.003  # same interval up to resampling noise


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
    ("a", "b", "expected"),
    [
        (A, B, "LoSiA forgets less than LoRA: yes, significant (\u0394BWT = +0.098, 95% CI [+0.013, +0.183], p = 0.0327, 5 seeds)"),
        (B, A, "LoSiA forgets less than LoRA: no, LoSiA forgets more than LoRA is significant (\u0394BWT = \u22120.098, "
               "95% CI [\u22120.183, \u22120.013], p = 0.0327, 5 seeds)"),
        ([-0.2, -0.3, -0.1], [-0.25, -0.2, -0.2],
         "LoSiA forgets less than LoRA: not significant (\u0394BWT = +0.017, 95% CI [\u22120.242, +0.275], p = 0.808, 3 seeds)"),
        ([-0.2], [-0.3], "LoSiA forgets less than LoRA: untested (\u0394BWT = +0.100, 1 seed; a test needs at least 2 seeds)"),
        ([-0.2, -0.3], [-0.2, -0.3], "LoSiA forgets less than LoRA: no difference (\u0394BWT = +0.000 in every seed, 2 seeds)"),
    ],
)
def test_verdicts(a, b, expected):  # numbers worked out by hand: d = A − B = (.10, .03, .15, .03, .18), t = 3.21
    line = verdict("LoSiA forgets less than LoRA", paired_difference(a, b), symbol="BWT",
                   opposite="LoSiA forgets more than LoRA")
    assert line == expected


def test_lower_is_better_flips_the_supporting_sign():
    diff = paired_difference([0.1, 0.15, 0.12, 0.11], [0.4, 0.5, 0.45, 0.42])  # forgetting: lower is better
    assert verdict("a forgets less than b", diff, symbol="F", higher_is_better=False).startswith(
        "a forgets less than b: yes, significant")
