"""cl_metrics: hand-computed score matrices, validation, and identities that hold for every matrix."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from losia_cl.errors import DataError
from losia_cl.metrics import CLMetrics, cl_metrics

approx = lambda x: pytest.approx(x, abs=1e-12)  # noqa: E731


def test_single_task_gives_none_for_undefined_quantities() -> None:
    m = cl_metrics([[0.2], [0.9]])
    assert m.num_tasks == 1
    assert m.average_performance == approx(0.9)
    assert m.learning_accuracy == approx(0.9)
    assert m.bwt is None and m.fwt is None and m.forgetting is None
    d = m.to_dict()
    assert d["bwt"] is None and d["fwt"] is None and d["forgetting"] is None
    assert d["bwt_curve"] == [None] and d["forgetting_curve"] == [None]
    assert d["average_performance_curve"] == [approx(0.9)]
    assert json.loads(json.dumps(d)) == d


def test_two_tasks_positive_backward_and_forward_transfer() -> None:
    # base: [0.3, 0.4]; after task 1: [0.5, 0.6]; after task 2: [0.7, 0.9]
    m = cl_metrics([[0.3, 0.4], [0.5, 0.6], [0.7, 0.9]])
    assert m.bwt == approx(0.2)  # 0.7 - 0.5
    assert m.fwt == approx(0.2)  # S[1,2] - S[0,2] = 0.6 - 0.4
    assert m.forgetting == approx(-0.2)  # max_{l=1} (0.5 - 0.7)
    assert m.average_performance == approx(0.8)  # (0.7 + 0.9) / 2
    assert m.learning_accuracy == approx(0.7)  # (0.5 + 0.9) / 2
    assert m.average_performance_curve == [approx(0.5), approx(0.8)]
    assert m.bwt_curve == [None, approx(0.2)]
    assert m.forgetting_curve == [None, approx(-0.2)]


def test_two_tasks_negative_transfer() -> None:
    # training task 1 hurts task 2 (0.6 -> 0.2) and task 2 hurts task 1 (0.8 -> 0.4)
    m = cl_metrics([[0.3, 0.6], [0.8, 0.2], [0.4, 0.7]])
    assert m.fwt == approx(-0.4)  # 0.2 - 0.6
    assert m.bwt == approx(-0.4)  # 0.4 - 0.8
    assert m.forgetting == approx(0.4)
    assert m.average_performance == approx(0.55)
    assert m.learning_accuracy == approx(0.75)


def test_three_tasks_mixed_transfer_all_values_by_hand() -> None:
    s = [
        [0.20, 0.10, 0.30],  # base model
        [0.70, 0.05, 0.25],  # after task 1: task 2 fell below base (negative transfer)
        [0.50, 0.80, 0.50],  # after task 2: task 3 rose above base (positive transfer)
        [0.60, 0.60, 0.90],  # after task 3
    ]
    m = cl_metrics(s)
    assert m.num_tasks == 3
    # AP_1 = 0.7, AP_2 = (0.5 + 0.8)/2, AP_3 = (0.6 + 0.6 + 0.9)/3
    assert m.average_performance_curve == [approx(0.7), approx(0.65), approx(0.7)]
    assert m.average_performance == approx(0.7)
    # BWT_2 = 0.5 - 0.7; BWT_3 = ((0.6 - 0.7) + (0.6 - 0.8)) / 2
    assert m.bwt_curve == [None, approx(-0.2), approx(-0.15)]
    assert m.bwt == approx(-0.15)
    # FWT = ((0.05 - 0.10) + (0.50 - 0.30)) / 2
    assert m.fwt == approx(0.075)
    # F_2 = 0.7 - 0.5; F_3 = (max(0.7 - 0.6, 0.5 - 0.6) + (0.8 - 0.6)) / 2
    assert m.forgetting_curve == [None, approx(0.2), approx(0.15)]
    assert m.forgetting == approx(0.15)
    assert m.learning_accuracy == approx(0.8)  # (0.7 + 0.8 + 0.9) / 3


def test_forgetting_uses_the_best_earlier_score_not_the_first() -> None:
    # task 1 improves after task 2 (0.5 -> 0.9), then drops to 0.6 after task 3
    s = [[0, 0, 0], [0.5, 0, 0], [0.9, 0.7, 0], [0.6, 0.7, 0.8]]
    m = cl_metrics(s)
    # BWT_3 = ((0.6 - 0.5) + (0.7 - 0.7)) / 2 = 0.05, although task 1 lost 0.3 from its best
    assert m.bwt == approx(0.05)
    # F_3 = (max(0.5 - 0.6, 0.9 - 0.6) + max(0.7 - 0.7)) / 2 = 0.15
    assert m.forgetting == approx(0.15)


def test_to_dict_has_the_contract_keys_and_is_json() -> None:
    d = cl_metrics(np.array([[0.1, 0.2], [0.8, 0.4], [0.6, 0.9]])).to_dict()
    for key in ("average_performance", "bwt", "fwt", "forgetting", "learning_accuracy",
                "average_performance_curve", "bwt_curve", "forgetting_curve"):
        assert key in d
    assert all(type(v) in (int, float, list, type(None)) for v in d.values())
    assert json.loads(json.dumps(d)) == d
    assert d["score_matrix"] == [[0.1, 0.2], [0.8, 0.4], [0.6, 0.9]]


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([[0.1, 0.2], [0.3, 0.4]], r"not \(T\+1\) x T"),
        ([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]], r"not \(T\+1\) x T"),
        ([[]], r"not \(T\+1\) x T"),
        ([0.1, 0.2], "2-D"),
        ([[0.1], [float("nan")]], r"entry \[1\]\[0\] = nan is not finite"),
        ([[0.1], [float("inf")]], "not finite"),
        ([[0.1], [1.5]], r"entry \[1\]\[0\] = 1.5 is outside \[0, 1\]"),
        ([[-0.01], [0.5]], "outside"),
        ([[0.1], ["high"]], "cannot read"),
        ([[0.1, 0.2], [0.3]], "cannot read"),
    ],
)
def test_invalid_score_matrices_raise_data_error_naming_the_problem(scores, message) -> None:
    with pytest.raises(DataError, match=message):
        cl_metrics(scores)


def test_dataclass_rejects_inconsistent_fields() -> None:
    with pytest.raises(DataError, match="None exactly when"):
        CLMetrics(num_tasks=1, score_matrix=[[0.0], [1.0]], average_performance=1.0, bwt=0.0,
                  fwt=None, forgetting=None, learning_accuracy=1.0,
                  average_performance_curve=[1.0], bwt_curve=[None], forgetting_curve=[None])


score_matrices = st.integers(min_value=1, max_value=6).flatmap(
    lambda t: st.lists(
        st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=t, max_size=t),
        min_size=t + 1, max_size=t + 1,
    )
)


@settings(max_examples=150, deadline=None)
@given(score_matrices)
def test_identities_hold_for_every_matrix(s) -> None:
    m = cl_metrics(s)
    t = m.num_tasks
    # AP_T = LA + (T-1)/T * BWT_T  (expand the sums of AP_T and BWT_T)
    assert m.average_performance == pytest.approx(
        m.learning_accuracy + ((t - 1) / t * m.bwt if t > 1 else 0.0), abs=1e-9
    )
    for i in range(2, t + 1):
        # max over l includes l = j, so forgetting >= -BWT at every stage
        assert m.forgetting_curve[i - 1] >= -m.bwt_curve[i - 1] - 1e-12
        assert -1.0 <= m.bwt_curve[i - 1] <= 1.0 and -1.0 <= m.forgetting_curve[i - 1] <= 1.0
    assert 0.0 <= m.average_performance <= 1.0 and 0.0 <= m.learning_accuracy <= 1.0
    if t > 1:
        assert m.bwt == m.bwt_curve[-1] and m.forgetting == m.forgetting_curve[-1]
        assert -1.0 <= m.fwt <= 1.0
    d = m.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert not any(isinstance(v, float) and math.isnan(v) for v in d.values())


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.floats(0.0, 1.0))
def test_a_run_that_never_changes_has_zero_bwt_and_forgetting(t, v) -> None:
    m = cl_metrics([[v] * t for _ in range(t + 1)])
    if t > 1:
        assert m.bwt == approx(0.0) and m.forgetting == approx(0.0) and m.fwt == approx(0.0)
    assert m.average_performance == approx(v)


def test_unbounded_scores_such_as_log_likelihoods_use_the_same_formulas() -> None:
    loglik = [[-3.0, -4.0], [-0.5, -3.5], [-2.0, -0.25]]  # nats per answer token, higher is better
    with pytest.raises(DataError, match=r"entry \[0\]\[0\] = -3.0 is outside \[0, 1\]"):
        cl_metrics(loglik)
    m = cl_metrics(loglik, bounded=False)
    assert m.bwt == pytest.approx(-1.5)  # -2.0 - (-0.5)
    assert m.forgetting == pytest.approx(1.5)
    assert m.fwt == pytest.approx(0.5)  # -3.5 - (-4.0)
    assert m.average_performance == pytest.approx(-1.125)
    with pytest.raises(DataError, match="not finite"):
        cl_metrics([[0.0], [float("-inf")]], bounded=False)


@pytest.mark.parametrize("key", ["average_performance", "bwt", "fwt", "forgetting", "learning_accuracy"])
@pytest.mark.parametrize("t", [1, 2, 4])
def test_metric_cells_are_exactly_the_cells_the_metric_reads(key, t) -> None:
    from losia_cl.metrics.continual import metric_cells

    rng = np.random.default_rng(t)
    s = rng.uniform(0.2, 0.8, size=(t + 1, t))
    value = cl_metrics(s).to_dict()[key]
    cells = set(metric_cells(key, t))
    for i in range(t + 1):
        for j in range(t):
            moved = s.copy()
            moved[i, j] += 1.0  # above every other score, so the running max of forgetting sees it too
            changed = cl_metrics(moved, bounded=False).to_dict()[key]
            assert (changed != value) == ((i, j) in cells), (key, i, j)


def test_fwt_at_the_floor_of_exact_match_and_bound_states() -> None:
    from losia_cl.metrics.continual import bound_state, metric_cells

    # nothing is right before its task is trained: FWT = 0 because the scale stops at 0
    s = [[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], [0.3, 0.1, 0.0], [0.3, 0.0, 0.05]]
    assert cl_metrics(s).fwt == 0.0
    assert bound_state([s[i][j] for i, j in metric_cells("fwt", 3)], low=0.0, high=1.0) == "floor"
    assert bound_state([s[i][j] for i, j in metric_cells("bwt", 3)], low=0.0, high=1.0) is None
    assert bound_state([1.0, 1.0], low=0.0, high=1.0) == "ceiling"
    assert bound_state([0.0, 0.0], high=0.0) == "ceiling" and bound_state([0.0, 0.0]) is None
    assert bound_state([], low=0.0) is None
    with pytest.raises(DataError, match="unknown metric 'ap'"):
        metric_cells("ap", 2)
