"""One data-parallel optimizer step for the trainer, built on the shared step (:mod:`losia_cl.step`).

Each rank runs forward and backward on its pieces of the step's micro-batches
(:func:`~losia_cl.distributed.sharding.shard_step`), the shared step's ``reduce_gradients`` hook sums
the gradients over the ranks (:class:`~losia_cl.distributed.reduce.GradientReducer`), and every rank
then clips and steps on the same gradient as a single process would.  The recorded step loss is
the sum of the ranks' shares, i.e. the one-process loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from losia_cl.distributed.context import DistContext
from losia_cl.distributed.reduce import GradientReducer, losia_blocks
from losia_cl.distributed.sharding import answer_tokens, piece_loss, shard_step
from losia_cl.distributed.verify import check_identical, debug_enabled
from losia_cl.errors import ConfigError

logger = logging.getLogger(__name__)


class DataParallel:
    """What the trainer needs to train in several processes: the step, the reducer, the debug checks."""

    def __init__(self, ctx: DistContext, debug: bool | None = None) -> None:
        self.ctx = ctx
        self.reducer = GradientReducer(ctx)
        self.debug = debug_enabled() if debug is None else debug
        self.subnet_checks = 0

    def check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Refuse optimizers that update inside backward (nothing to all-reduce before their step)."""
        config = getattr(optimizer, "config", None)
        if self.ctx.enabled and getattr(config, "layerwise", False):
            raise ConfigError("layerwise = True updates each matrix inside backward, before gradients can be "
                              "all-reduced: it cannot train in several processes (use layerwise = False)")

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        micro_batches: Sequence[Sequence[int]],
        features: Sequence[Mapping[str, Any]],
        make_batch: Callable[[Sequence[int]], Mapping[str, Tensor]],
        *,
        max_grad_norm: float | None,
    ) -> float:
        """One optimizer step whose global batch is ``micro_batches``; returns the step's loss (all ranks)."""
        from losia_cl.step import apply_update, backward_micro_batch

        local = 0.0
        for piece in shard_step(micro_batches, self.ctx.rank, self.ctx.world_size):
            tokens = 0 if piece.whole else sum(answer_tokens(features[i]) for i in micro_batches[piece.micro])
            loss_fn = partial(piece_loss, piece=piece, num_micro=len(micro_batches), micro_tokens=tokens)
            local += backward_micro_batch(model, make_batch(piece.indices), 1, loss_fn)
        blocks = losia_blocks(optimizer)  # which matrices record is decided by the step about to be taken
        apply_update(model, optimizer, scheduler, max_grad_norm=max_grad_norm,
                     reduce_gradients=lambda m: self.reducer(m.parameters(), blocks))
        if self.debug:
            self.verify_subnets(optimizer)
        return self.ctx.sum_float(local)

    def verify_subnets(self, optimizer: torch.optim.Optimizer) -> None:
        """Raise unless every rank holds the same LoSiA subnets (no-op for other optimizers)."""
        subnets = getattr(optimizer, "subnets", None)
        if callable(subnets):
            check_identical(self.ctx, subnets(), f"LoSiA subnets after step {optimizer.global_step}")
            self.subnet_checks += 1

    def verify_weights(self, model: nn.Module, when: str) -> None:
        """With ``LOSIA_CL_DEBUG_DDP``: raise unless every rank holds the same weights."""
        if self.debug:
            check_identical(self.ctx, dict(model.state_dict()), f"weights {when}")
            checked = f"; LoSiA subnets identical after each of {self.subnet_checks} steps" if self.subnet_checks else ""
            logger.info("debug: weights identical on %d ranks %s%s", self.ctx.world_size, when, checked)
