"""Learning-rate schedulers: the warm-up + cosine envelope as an ordinary ``LambdaLR``."""

from __future__ import annotations

import torch

from losia_cl.optim.schedule import envelope_lr, official_lr_factor


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
    """The envelope of a LoSiA optimizer's config (``warmup_ratio``, ``min_lr_ratio``, ``ramps_from_zero``).

    With ``envelope='current'`` (the default) one envelope for every group (:func:`envelope_scheduler`);
    the optimizer multiplies it by each matrix's re-warm ramp.  With ``envelope='official'``, each
    target group gets the official code's per-matrix schedule
    (:func:`~losia_cl.optim.schedule.official_lr_factor`), the ramp included, a function of the step and
    of the matrix's last re-localization (read from the optimizer's state at every ``step()``); dense
    groups get its warm-up and cosine.
    """
    if not isinstance(num_training_steps, int) or num_training_steps < 1:
        from losia_cl.errors import ConfigError

        raise ConfigError(f"num_training_steps = {num_training_steps!r} is invalid: it must be an integer >= 1")
    config = optimizer.config  # type: ignore[attr-defined]
    if config.envelope == "official":
        return official_scheduler(optimizer, num_training_steps)
    return envelope_scheduler(
        optimizer, num_training_steps, config.warmup_ratio, config.min_lr_ratio, config.ramps_from_zero
    )


def official_scheduler(optimizer: torch.optim.Optimizer, num_training_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` with one lambda per group: the official per-matrix schedule of a LoSiA optimizer.

    Step ``s`` of a target group runs at ``group["initial_lr"] * official_lr_factor(s, r, N, T, ...)``,
    ``r`` the boundary of the matrix's last re-localization (``state["last_relocalization"]``); call
    ``scheduler.step()`` after ``optimizer.step()``, which re-localizes at the end of its step.
    """
    config = optimizer.config  # type: ignore[attr-defined]
    sizes = (num_training_steps, config.period, config.warmup_ratio, config.min_lr_ratio)

    def target(weight: torch.Tensor):
        def factor(step: int) -> float:
            # read through the optimizer: load_state_dict replaces its state dict
            last = int(optimizer.state[weight]["last_relocalization"])
            return official_lr_factor(step, last, *sizes)

        return factor

    def dense(step: int) -> float:
        return official_lr_factor(step, None, *sizes)

    lambdas = [target(g["params"][0]) if g.get("losia") else dense for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def applied_lr(optimizer: torch.optim.Optimizer) -> float:
    """Mean learning rate the optimizer's next step applies, weighted by the entries it updates.

    An optimizer with its own ``applied_lr()`` (LoSiA: each matrix's re-warmed rate over its subnet,
    0 while the first subnets are scored) answers itself; otherwise every group's ``lr`` weighted by
    the entries of its parameters that require gradients.  Call it before ``optimizer.step()``.
    """
    own = getattr(optimizer, "applied_lr", None)
    if callable(own):
        return float(own())
    weighted = entries = 0.0
    for group in optimizer.param_groups:
        n = sum(p.numel() for p in group["params"] if p.requires_grad)
        weighted += n * group["lr"]
        entries += n
    return weighted / entries if entries else 0.0


def advance_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> None:
    """Put ``scheduler`` where it would be after ``steps`` calls of ``step()`` (sets the groups' lr)."""
    import warnings

    scheduler.last_epoch = steps - 1
    with warnings.catch_warnings():  # "step() called before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
