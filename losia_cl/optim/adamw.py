"""The Adam update, written once for subnet blocks and dense parameters alike."""

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
    decoupled_weight_decay: bool = True,
    hf_epsilon: bool = False,
) -> None:
    """One in-place Adam step with bias correction; by default exactly ``torch.optim.AdamW``'s.

    ``step`` is the 0-dim float tensor counting this tensor's Adam steps; it is incremented here.
    ``decoupled_weight_decay=False`` is ``torch.optim.Adam``'s L2 penalty (``grad + wd * param``)
    instead of AdamW's decay.  ``hf_epsilon=True`` adds ``eps`` to the uncorrected ``sqrt(v)`` and
    scales the step by ``sqrt(1 - beta2^t) / (1 - beta1^t)`` (Hugging Face's old ``AdamW``);
    torch adds it to the bias-corrected ``sqrt(v_hat)``.
    """
    beta1, beta2 = betas
    step += 1
    t = step.item()
    grad = grad.to(exp_avg.dtype)
    if weight_decay:
        if decoupled_weight_decay:
            param.mul_(1 - lr * weight_decay)
        else:
            grad = grad.add(param, alpha=weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**t
    bias_correction2_sqrt = math.sqrt(1 - beta2**t)
    if hf_epsilon:
        param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-lr * bias_correction2_sqrt / bias_correction1)
        return
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
