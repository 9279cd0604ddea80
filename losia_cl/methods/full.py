"""Full fine-tuning: AdamW on every weight (the forgetting baseline)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from losia_cl.methods.base import METHODS, DenseMethodDefaults, TaskContext
from losia_cl.methods.schedule import envelope_scheduler


@METHODS.register("full")
@dataclass
class FullFineTuning(DenseMethodDefaults):
    """AdamW on all parameters, under the shared warm-up + cosine envelope."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    min_lr_ratio: float = 0.1
    name: str = "full"

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def build_optimizer(self, model: nn.Module, ctx: TaskContext):
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay, eps=1e-6)
        return optimizer, envelope_scheduler(optimizer, ctx.num_training_steps, self.warmup_ratio, self.min_lr_ratio)

    def after_task(self, model: nn.Module, optimizer, ctx: TaskContext) -> nn.Module:
        return model
