"""Full fine-tuning: AdamW on every weight (the forgetting baseline)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from losia_cl.fields import documented
from losia_cl.methods.base import TaskContext, is_number, register_method, require
from losia_cl.methods.dense import DenseMethodDefaults, adamw
from losia_cl.methods.schedule import envelope_scheduler


def check_envelope(method: str, lr: float, warmup_ratio: float, min_lr_ratio: float) -> None:
    """Validate the options of the shared learning-rate envelope."""
    require(is_number(lr) and math.isfinite(lr) and lr > 0, method, "lr", lr, "a number > 0")
    require(is_number(warmup_ratio) and 0 <= warmup_ratio < 1, method, "warmup_ratio", warmup_ratio, "in [0, 1)")
    require(is_number(min_lr_ratio) and 0 <= min_lr_ratio <= 1, method, "min_lr_ratio", min_lr_ratio, "in [0, 1]")


@register_method("full")
@dataclass
class FullFineTuning(DenseMethodDefaults):
    """AdamW on all parameters, under the shared warm-up + cosine envelope."""

    lr: float = documented("Peak learning rate (> 0) of AdamW.", 1e-4)
    weight_decay: float = documented("AdamW's decoupled weight decay (>= 0).", 0.0)
    warmup_ratio: float = documented("Fraction in [0, 1) of the task's steps spent in the linear warm-up.", 0.0)
    min_lr_ratio: float = documented("In [0, 1]: the cosine decays from lr to min_lr_ratio*lr at the task's end.", 0.1)

    def __post_init__(self) -> None:
        check_envelope(self.name, self.lr, self.warmup_ratio, self.min_lr_ratio)
        require(is_number(self.weight_decay) and self.weight_decay >= 0, self.name, "weight_decay",
                self.weight_decay, "a number >= 0")

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def build_optimizer(self, model: nn.Module, ctx: TaskContext):
        optimizer = adamw(list(model.parameters()), lr=self.lr, weight_decay=self.weight_decay, eps=1e-6)
        return optimizer, envelope_scheduler(optimizer, ctx.num_training_steps, self.warmup_ratio, self.min_lr_ratio)

    def after_task(self, model: nn.Module, optimizer, ctx: TaskContext) -> nn.Module:
        return model
