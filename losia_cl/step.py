"""One optimizer step, shared by the trainer, the Avalanche strategy and the bench.

A step is: for each micro-batch, forward + loss / ``loss_divisor`` + backward (gradients
accumulate); then ``reduce_gradients`` (a hook, e.g. a data-parallel all-reduce); gradient-norm
clipping; the optimizer step; the scheduler step; ``zero_grad``.

Data parallelism plugs in without changing this module: give each rank its share of the step's
micro-batches, ``loss_divisor`` = the number of micro-batches of the whole step (over all ranks),
and a ``reduce_gradients`` that sums the gradients over the ranks.  Every rank then clips and
steps on the same gradient as a single process would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from losia_cl.lm_loss import answer_loss

#: ``loss_fn(model, batch) -> scalar loss`` of one micro-batch.
LossFn = Callable[[nn.Module, Mapping[str, Tensor]], Tensor]
#: Called between the last backward and clipping with the model whose gradients are to be reduced.
ReduceGradients = Callable[[nn.Module], None]


def backward_micro_batch(model: nn.Module, batch: Mapping[str, Tensor], loss_divisor: int,
                         loss_fn: LossFn = answer_loss) -> float:
    """Forward and backward of one micro-batch with its loss divided by ``loss_divisor``; returns that loss."""
    loss = loss_fn(model, batch) / loss_divisor
    loss.backward()
    return loss.item()


def clip_gradients(model: nn.Module, optimizer: torch.optim.Optimizer, max_norm: float | None) -> Tensor | None:
    """Clip the gradient norm to ``max_norm`` (None or 0: off); returns the norm before clipping.

    An optimizer with its own ``clip_grad_norm_(max_norm)`` (LoSiA: the norm over exactly the
    entries its step applies) clips; otherwise ``torch.nn.utils.clip_grad_norm_`` over the
    parameters that have gradients.
    """
    if not max_norm:
        return None
    own = getattr(optimizer, "clip_grad_norm_", None)
    if callable(own):
        return own(max_norm)
    return torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)


def apply_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    max_grad_norm: float | None,
    reduce_gradients: ReduceGradients | None = None,
    zero_grad: bool = True,
) -> None:
    """The part of a step after the backward passes: reduce, clip, optimizer step, scheduler step, zero_grad."""
    if reduce_gradients is not None:
        reduce_gradients(model)
    clip_gradients(model, optimizer, max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    micro_batches: Iterable[Mapping[str, Tensor]],
    *,
    loss_divisor: int,
    max_grad_norm: float | None,
    loss_fn: LossFn = answer_loss,
    reduce_gradients: ReduceGradients | None = None,
) -> float:
    """One optimizer step over ``micro_batches`` (each on the model's device); returns the step's loss.

    The step's loss is the sum of the micro-batch losses divided by ``loss_divisor`` (the mean over
    the step's micro-batches when ``loss_divisor`` is their number).  ``micro_batches`` may be a
    generator: each batch is built just before its forward pass.
    """
    step_loss = 0.0
    for batch in micro_batches:
        step_loss += backward_micro_batch(model, batch, loss_divisor, loss_fn)
    apply_update(model, optimizer, scheduler, max_grad_norm=max_grad_norm, reduce_gradients=reduce_gradients)
    return step_loss
