"""The AdamW update, written once for subnet blocks and dense parameters alike."""

from __future__ import annotations

import math

from torch import Tensor


def adamw_update(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> None:
    """One in-place AdamW step (decoupled weight decay, bias correction), as ``torch.optim.AdamW``.

    ``step`` is the 0-dim float tensor counting this tensor's Adam steps; it is incremented here.
    """
    beta1, beta2 = betas
    step += 1
    t = step.item()
    if weight_decay:
        param.mul_(1 - lr * weight_decay)
    grad = grad.to(exp_avg.dtype)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**t
    bias_correction2_sqrt = math.sqrt(1 - beta2**t)
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
