"""Importance scoring and greedy sub-matrix localization (pure tensor functions)."""

from __future__ import annotations

import torch
from torch import Tensor


def sensitivity(weight: Tensor, grad: Tensor, kind: str = "mix") -> Tensor:
    """Taylor sensitivity I of every entry, in float32, with ``a = W * G``.

    ``kind='mix'``: ``|a - a^2 / 2|``; ``'first'``: ``|a|``; ``'second'``: ``a^2``.
    """
    a = weight.float() * grad.float()
    if kind == "mix":
        return (a - 0.5 * a * a).abs_()
    if kind == "first":
        return a.abs_()
    if kind == "second":
        return a.mul_(a)
    raise ValueError(f"unknown importance kind {kind!r}; known: mix, first, second")


def update_importance_emas(
    importance_avg: Tensor, uncertainty_avg: Tensor, importance: Tensor, beta_importance: float, beta_uncertainty: float
) -> None:
    """In place: ``Ī <- b1 Ī + (1 - b1) I``; then ``Ū <- b2 Ū + (1 - b2) |I - Ī|`` (with the new Ī)."""
    importance_avg.mul_(beta_importance).add_(importance, alpha=1 - beta_importance)
    uncertainty_avg.mul_(beta_uncertainty).add_((importance - importance_avg).abs_(), alpha=1 - beta_uncertainty)


def _top(values: Tensor, k: int) -> Tensor:
    return torch.topk(values, k, sorted=False).indices.sort().values


def block_sum(score: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``sum(score[rows][:, cols])``."""
    return score.index_select(0, rows).index_select(1, cols).sum()


def localization_candidates(score: Tensor, num_rows: int, num_cols: int) -> dict[str, tuple[Tensor, Tensor]]:
    """The three greedy candidates for a ``num_rows`` x ``num_cols`` block of ``score``.

    * ``'independent'``: R = top row sums of S, C = top column sums of S;
    * ``'rows_first'``: R = top row sums of S, then C = top column sums of S[R, :];
    * ``'cols_first'``: C = top column sums of S, then R = top row sums of S[:, C].
    """
    d_out, d_in = score.shape
    if not (1 <= num_rows <= d_out and 1 <= num_cols <= d_in):
        raise ValueError(f"cannot pick {num_rows}x{num_cols} from a {d_out}x{d_in} score")
    score = score.float()
    row_top = _top(score.sum(1), num_rows)
    col_top = _top(score.sum(0), num_cols)
    return {
        "independent": (row_top, col_top),
        "rows_first": (row_top, _top(score.index_select(0, row_top).sum(0), num_cols)),
        "cols_first": (_top(score.index_select(1, col_top).sum(1), num_rows), col_top),
    }


def localize(score: Tensor, num_rows: int, num_cols: int) -> tuple[Tensor, Tensor, str]:
    """Greedy choice of ``num_rows`` rows and ``num_cols`` columns maximising ``sum(S[R, C])``.

    Of the :func:`localization_candidates`, the one with the largest block sum is kept (ties go
    to the earlier one: independent, rows_first, cols_first).  Returns sorted, unique int64
    index tensors and the name of the winning candidate.
    """
    candidates = localization_candidates(score, num_rows, num_cols)
    best_name, best_value = "", None
    for name, (rows, cols) in candidates.items():
        value = block_sum(score.float(), rows, cols)
        if best_value is None or value > best_value:
            best_name, best_value = name, value
    rows, cols = candidates[best_name]
    return rows.to(torch.int64), cols.to(torch.int64), best_name


def random_subnet(d_out: int, d_in: int, num_rows: int, num_cols: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sorted random rows and columns (the reference implementation's initial subnet)."""
    rows = torch.randperm(d_out, generator=generator)[:num_rows].sort().values
    cols = torch.randperm(d_in, generator=generator)[:num_cols].sort().values
    return rows, cols
