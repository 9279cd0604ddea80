r"""Forgetting and transfer from a continual-learning score matrix.

The score matrix ``S`` has shape ``(T+1) × T``: row 0 holds the base model's
scores before any training, row ``i`` (1 ≤ i ≤ T) the scores on every task
``j`` after training tasks ``1..i``.  Tasks are numbered from 1, so ``S[i, j]``
below is ``S[i][j-1]`` in Python; scores are on a 0–1 scale.

=====================  ========================================================================
quantity               formula (``i`` = stage, ``T`` = number of tasks)
=====================  ========================================================================
average performance    ``AP_i = (1/i) Σ_{j=1..i} S[i, j]``; final ``AP = AP_T`` (TRACE's "OP")
BWT                    ``BWT_i = 1/(i−1) Σ_{j=1..i−1} (S[i, j] − S[j, j])`` (Lopez-Paz & Ranzato 2017)
FWT                    ``FWT = 1/(T−1) Σ_{j=2..T} (S[j−1, j] − S[0, j])``
forgetting             ``F_i = 1/(i−1) Σ_{j=1..i−1} max_{j ≤ l < i} (S[l, j] − S[i, j])`` (Chaudhry et al. 2018)
learning accuracy      ``LA = (1/T) Σ_{j=1..T} S[j, j]``
=====================  ========================================================================

BWT, FWT and forgetting are reported for ``i = T``; their per-stage curves hold
the value after every stage (``None`` at stage 1, where they are undefined).
With ``T = 1`` they are ``None`` — never 0.  Two identities hold for every
matrix and are checked by the tests: ``AP_T = LA + (T−1)/T · BWT_T`` and
``F_i ≥ −BWT_i``.

Forgetting is Chaudhry et al.'s definition (A. Chaudhry, P. K. Dokania, T. Ajanthan, P. H. S. Torr,
"Riemannian Walk for Incremental Learning: Understanding Forgetting and Intransigence", ECCV 2018, eq. 2–3):
for each earlier task, the largest drop from its best score at any earlier stage (its own stage included)
to its score now, averaged over the earlier tasks.

A metric whose every input cell sits at a bound of the scale (all 0, or all 1, in every seed) cannot tell
methods apart: :func:`metric_cells` names the cells each metric reads and :func:`bound_state` says whether
a set of values sits at a floor or a ceiling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losia_cl.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["CLMetrics", "bound_state", "cl_metrics", "metric_cells", "validate_score_matrix"]

#: the final metrics of :class:`CLMetrics`, by key.
_METRICS = ("average_performance", "bwt", "fwt", "forgetting", "learning_accuracy")


def _unread(rows: int, cols: int) -> np.ndarray:
    """The cells no metric reads: ``S[i][j]`` with ``1 <= i < j`` (task ``j+1`` after stages before the one
    preceding its training)."""
    i, j = np.indices((rows, cols))
    return (i >= 1) & (i < j)


def validate_score_matrix(scores: Any, *, bounded: bool = True) -> np.ndarray:
    """Return ``scores`` as a float64 array after checking it is a valid ``(T+1) × T`` score matrix.

    Raises :class:`~losia_cl.errors.DataError` naming the problem: not a 2-D
    numeric array, a shape other than ``(T+1) × T`` with ``T ≥ 1``, a non-finite
    entry, or (when ``bounded``) an entry outside ``[0, 1]`` (each with its row and column).
    Only the cells no metric reads, ``S[i][j]`` with ``1 ≤ i < j``, may be missing (``None`` or NaN): a
    continued stream (docs/saved-models.md) never scored the earlier stages on the tasks added later.
    ``bounded=False`` accepts any finite value, e.g. mean log-likelihoods.
    """
    try:
        s = np.array(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"score matrix: cannot read it as a 2-D array of numbers ({exc}); "
            "give a (T+1) x T list of lists or array"
        ) from None
    if s.ndim != 2:
        raise DataError(f"score matrix: expected a 2-D (T+1) x T array, got {s.ndim} dimension(s)")
    rows, cols = s.shape
    if cols < 1 or rows != cols + 1:
        raise DataError(
            f"score matrix: shape {rows} x {cols} is not (T+1) x T with T >= 1 "
            "(row 0 = base model, row i = after training tasks 1..i)"
        )
    bad = np.argwhere(~np.isfinite(s) & ~(np.isnan(s) & _unread(rows, cols)))
    if bad.size:
        i, j = bad[0]
        raise DataError(f"score matrix: entry [{i}][{j}] = {float(s[i, j])} is not finite")
    with np.errstate(invalid="ignore"):
        bad = np.argwhere((s < 0.0) | (s > 1.0)) if bounded else np.empty((0, 2))
    if bad.size:
        i, j = bad[0]
        raise DataError(
            f"score matrix: entry [{i}][{j}] = {float(s[i, j])!r} is outside [0, 1]; "
            "scores must be on a 0-1 scale (divide percentages by 100)"
        )
    return s


@dataclass(frozen=True)
class CLMetrics:
    """Continual-learning metrics of one run; build it with :func:`cl_metrics`.

    Curves are lists with one entry per stage ``i = 1..T`` (index ``i − 1``).

    Attributes:
        num_tasks: ``T``.
        score_matrix: the validated ``(T+1) × T`` score matrix, as lists.
        average_performance: ``AP_T`` (TRACE's overall performance "OP").
        bwt: backward transfer ``BWT_T``; ``None`` when ``T = 1``.
        fwt: forward transfer ``FWT``; ``None`` when ``T = 1``.
        forgetting: average forgetting ``F_T``; ``None`` when ``T = 1``.
        learning_accuracy: ``LA``, mean of the diagonal ``S[j, j]``.
        average_performance_curve: ``AP_i`` for ``i = 1..T``.
        bwt_curve: ``BWT_i`` for ``i = 1..T`` (``None`` at ``i = 1``).
        forgetting_curve: ``F_i`` for ``i = 1..T`` (``None`` at ``i = 1``).
    """

    num_tasks: int
    score_matrix: list[list[float | None]]
    average_performance: float
    bwt: float | None
    fwt: float | None
    forgetting: float | None
    learning_accuracy: float
    average_performance_curve: list[float] = field(default_factory=list)
    bwt_curve: list[float | None] = field(default_factory=list)
    forgetting_curve: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        t = self.num_tasks
        if t < 1:
            raise DataError(f"CLMetrics.num_tasks must be >= 1, got {t}")
        for name in ("average_performance_curve", "bwt_curve", "forgetting_curve"):
            if len(getattr(self, name)) != t:
                raise DataError(f"CLMetrics.{name} must have one value per stage ({t})")
        undefined = [n for n in ("bwt", "fwt", "forgetting") if (getattr(self, n) is None) != (t == 1)]
        if undefined:
            raise DataError(f"CLMetrics: {undefined} must be None exactly when num_tasks == 1")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (plain floats, lists and ``None``)."""
        return {
            "num_tasks": self.num_tasks,
            "average_performance": self.average_performance,
            "bwt": self.bwt,
            "fwt": self.fwt,
            "forgetting": self.forgetting,
            "learning_accuracy": self.learning_accuracy,
            "average_performance_curve": list(self.average_performance_curve),
            "bwt_curve": list(self.bwt_curve),
            "forgetting_curve": list(self.forgetting_curve),
            "score_matrix": [list(row) for row in self.score_matrix],
        }


def _mean(values: Sequence[float]) -> float:
    return float(math.fsum(values) / len(values))


def _bwt(s: np.ndarray, i: int) -> float | None:
    """BWT after stage ``i`` (1-based); rows of ``s`` are stages, column ``j−1`` is task ``j``."""
    if i < 2:
        return None
    return _mean([s[i, j - 1] - s[j, j - 1] for j in range(1, i)])


def _forgetting_curve(s: np.ndarray, t: int) -> list[float | None]:
    """Forgetting after each stage ``i = 1..t``, in ``O(t²)``.

    ``F_i = mean_{j<i} max_{j≤l<i} (S[l, j] − S[i, j])``; ``best[j]`` carries the
    running maximum of task ``j``'s earlier scores from stage to stage (the same
    floating-point values as the definition: max and one subtraction per term).
    """
    curve: list[float | None] = [None]
    best = np.full(t, -np.inf)
    for i in range(2, t + 1):
        row = i - 1  # scores after stage i − 1 join the maxima of tasks 1..i−1
        best[:row] = np.maximum(best[:row], s[row, :row])
        curve.append(_mean((best[:row] - s[i, :row]).tolist()))
    return curve[:t]


def cl_metrics(scores: Any, *, bounded: bool = True) -> CLMetrics:
    """Compute :class:`CLMetrics` from a ``(T+1) × T`` score matrix (see the module docstring).

    ``scores`` is anything ``numpy.array`` reads as a 2-D float array (list of
    lists, array, tensor on the CPU).  Invalid input raises
    :class:`~losia_cl.errors.DataError`.  ``bounded=False`` takes any finite
    scores where higher is better (e.g. the mean log-likelihoods of
    ``loglik_scores``); the formulas are unchanged.

    >>> m = cl_metrics([[0.1, 0.2], [0.8, 0.4], [0.6, 0.9]])
    >>> round(m.bwt, 3), round(m.fwt, 3), round(m.average_performance, 3)
    (-0.2, 0.2, 0.75)
    """
    s = validate_score_matrix(scores, bounded=bounded)
    t = s.shape[1]
    ap_curve = [_mean([s[i, j - 1] for j in range(1, i + 1)]) for i in range(1, t + 1)]
    fwt = None if t < 2 else _mean([s[j - 1, j - 1] - s[0, j - 1] for j in range(2, t + 1)])
    forgetting_curve = _forgetting_curve(s, t)
    result = CLMetrics(
        num_tasks=t,
        score_matrix=[[None if math.isnan(v) else v for v in row] for row in s.tolist()],
        average_performance=ap_curve[-1],
        bwt=_bwt(s, t),
        fwt=fwt,
        forgetting=forgetting_curve[-1],
        learning_accuracy=_mean([s[j, j - 1] for j in range(1, t + 1)]),
        average_performance_curve=ap_curve,
        bwt_curve=[_bwt(s, i) for i in range(1, t + 1)],
        forgetting_curve=forgetting_curve,
    )
    logger.debug("cl_metrics over %d task(s): %s", t, result)
    return result


def metric_cells(key: str, num_tasks: int) -> list[tuple[int, int]]:
    """The cells ``(row, column)`` (0-based, as in ``S[row][column]``) that the final value of ``key`` reads.

    ``key`` is ``average_performance``, ``bwt``, ``fwt``, ``forgetting`` or ``learning_accuracy``; ``[]`` for BWT, FWT and forgetting when ``num_tasks = 1``.
    """
    t = num_tasks
    if t < 1:
        raise DataError(f"metric_cells: num_tasks must be >= 1, got {t}")
    if key == "average_performance":
        return [(t, c) for c in range(t)]
    if key == "learning_accuracy":
        return [(c + 1, c) for c in range(t)]
    if key == "bwt":
        return [cell for c in range(t - 1) for cell in ((t, c), (c + 1, c))]
    if key == "fwt":  # task j = c + 1 before its training (row c) and in the base model (row 0)
        return [cell for c in range(1, t) for cell in ((c, c), (0, c))]
    if key == "forgetting":
        return [(row, c) for c in range(t - 1) for row in range(c + 1, t + 1)]
    raise DataError(f"metric_cells: unknown metric {key!r}; choose among {', '.join(_METRICS)}")


def bound_state(values: Sequence[float], *, low: float | None = None, high: float | None = None) -> str | None:
    """``"floor"`` when every value equals ``low``, ``"ceiling"`` when every value equals ``high``, else ``None``.

    Used on the inputs of a metric over all seeds: a metric computed from scores that all sit at the floor
    (e.g. FWT from exact-match scores that are 0 before and after the earlier tasks) is 0 because the scale
    cannot go lower, not because nothing transferred.  ``None`` for no values.
    """
    vals = [float(v) for v in values]
    if not vals:
        return None
    if low is not None and all(v == low for v in vals):
        return "floor"
    if high is not None and all(v == high for v in vals):
        return "ceiling"
    return None
