"""The learning-rate envelope shared by every method (LoSiA applies it internally)."""

from __future__ import annotations

import torch

from losia_cl.optim.schedule import envelope_lr


def envelope_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, min_lr_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying :func:`~losia_cl.optim.schedule.envelope_lr` (linear warm-up, cosine decay)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: envelope_lr(step, total_steps, 1.0, warmup_ratio, min_lr_ratio)
    )
