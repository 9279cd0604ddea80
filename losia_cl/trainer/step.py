"""One optimizer step, where the trainer's modules and earlier code import it from (:mod:`losia_cl.step`)."""

from __future__ import annotations

from losia_cl.step import (
    LossFn,
    ReduceGradients,
    apply_update,
    backward_micro_batch,
    clip_gradients,
    train_step,
)

__all__ = ["LossFn", "ReduceGradients", "apply_update", "backward_micro_batch", "clip_gradients", "train_step"]
