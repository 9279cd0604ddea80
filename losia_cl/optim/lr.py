"""Learning-rate schedulers: the warm-up + cosine envelope as an ordinary ``LambdaLR``."""

from __future__ import annotations

import torch

from losia_cl.optim.schedule import envelope_lr


def envelope_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_ratio: float = 0.0,
    min_lr_ratio: float = 0.1,
    from_zero: bool = False,
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` applying :func:`~losia_cl.optim.schedule.envelope_lr` (linear warm-up, cosine decay).

    Call ``scheduler.step()`` after every ``optimizer.step()``; step ``s`` then runs at
    ``group["initial_lr"] * envelope_lr(s, total_steps, 1, warmup_ratio, min_lr_ratio, from_zero)``.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: envelope_lr(step, total_steps, 1.0, warmup_ratio, min_lr_ratio, from_zero)
    )


def losia_scheduler(optimizer: torch.optim.Optimizer, num_training_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The envelope of a LoSiA optimizer's config (``warmup_ratio``, ``min_lr_ratio``, ``ramps_from_zero``)."""
    if not isinstance(num_training_steps, int) or num_training_steps < 1:
        from losia_cl.errors import ConfigError

        raise ConfigError(f"num_training_steps = {num_training_steps!r} is invalid: it must be an integer >= 1")
    config = optimizer.config  # type: ignore[attr-defined]
    return envelope_scheduler(
        optimizer, num_training_steps, config.warmup_ratio, config.min_lr_ratio, config.ramps_from_zero
    )


def advance_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> None:
    """Put ``scheduler`` where it would be after ``steps`` calls of ``step()`` (sets the groups' lr)."""
    import warnings

    scheduler.last_epoch = steps - 1
    with warnings.catch_warnings():  # "step() called before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
