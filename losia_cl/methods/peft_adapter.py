"""Shared machinery of the peft-based methods (LoRA, DoRA, PiSSA)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from losia_cl.fields import documented
from losia_cl.methods.base import TaskContext, is_number, require
from losia_cl.methods.dense import DenseMethodDefaults, adamw
from losia_cl.methods.full import check_envelope
from losia_cl.methods.schedule import envelope_scheduler
from losia_cl.optim.targets import find_targets, subnet_size

logger = logging.getLogger(__name__)


def matched_rank(model: nn.Module, rank_factor: float) -> int:
    """LoRA rank whose parameter count is closest to LoSiA's subnets at ``rank_factor``.

    ``r = round(Σ |R||C| / Σ (d_out + d_in))`` over the decoder blocks' linear layers, at least 1.
    """
    targets = find_targets(model, rank_factor)
    subnet = sum(subnet_size(t.shape[0], rank_factor) * subnet_size(t.shape[1], rank_factor) for t in targets)
    per_rank = sum(t.shape[0] + t.shape[1] for t in targets)
    return max(1, round(subnet / per_rank))


@dataclass
class PeftAdapterMethod(DenseMethodDefaults):
    """An adapter method through ``peft`` on every linear layer of the decoder blocks.

    ``per_task=False`` (TRACE's baseline) trains one adapter across the whole stream;
    ``per_task=True`` merges it into the base after every task and starts a fresh one.
    """

    lr: float = documented("Peak learning rate (> 0) of AdamW on the adapter weights.", 1e-3)
    rank: int | None = documented(
        "Adapter rank (>= 1); null: the rank whose parameter count is closest to LoSiA's at rank_factor.", None
    )
    alpha: float | None = documented("Adapter scaling numerator (> 0); null: 2*rank.", None)
    dropout: float = documented("Dropout in [0, 1) on the adapter's input.", 0.0)
    per_task: bool = documented("Merge the adapter after every task and start a fresh one (false: one adapter).", False)
    rank_factor: float = documented(
        "LoSiA's rank factor p in (0, 1] whose trainable-parameter count the default rank matches (unused with rank).",
        1 / 8,
    )
    warmup_ratio: float = documented("Fraction in [0, 1) of the task's steps spent in the linear warm-up.", 0.0)
    min_lr_ratio: float = documented("In [0, 1]: the cosine decays from lr to min_lr_ratio*lr at the task's end.", 0.1)

    def __post_init__(self) -> None:
        check_envelope(self.name, self.lr, self.warmup_ratio, self.min_lr_ratio)
        require(self.rank is None or (isinstance(self.rank, int) and not isinstance(self.rank, bool) and self.rank >= 1),
                self.name, "rank", self.rank, "null or an integer >= 1")
        require(self.alpha is None or (is_number(self.alpha) and self.alpha > 0), self.name, "alpha", self.alpha,
                "null or a number > 0")
        require(is_number(self.dropout) and 0 <= self.dropout < 1, self.name, "dropout", self.dropout, "in [0, 1)")
        require(isinstance(self.per_task, bool), self.name, "per_task", self.per_task, "true or false")
        require(is_number(self.rank_factor) and 0 < self.rank_factor <= 1, self.name, "rank_factor",
                self.rank_factor, "in (0, 1]")

    def _lora_config_kwargs(self) -> dict[str, Any]:
        return {}

    def _mutates_base(self) -> bool:
        """Whether the adapter's initialisation changes the base weights (PiSSA's does: it takes out the principal
        components it starts from)."""
        return str(self._lora_config_kwargs().get("init_lora_weights", "")).lower().startswith("pissa")

    def initial_adapter(self) -> dict[str, Any] | None:
        """The adapter's state dict as it started, when its initialisation changed the base weights (else None):
        what a saved adapter is converted with to load over the unmodified base model."""
        return getattr(self, "_initial_adapter", None)

    def resolved_rank(self, model: nn.Module) -> int:
        return self.rank if self.rank is not None else matched_rank(model, self.rank_factor)

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        from peft import LoraConfig, PeftModel, get_peft_model

        if isinstance(model, PeftModel):
            return model
        rank = self.resolved_rank(model)
        targets = [t.name for t in find_targets(model, self.rank_factor)]
        config = LoraConfig(
            r=rank, lora_alpha=self.alpha if self.alpha is not None else 2 * rank, lora_dropout=self.dropout,
            target_modules=targets, bias="none", **self._lora_config_kwargs(),
        )
        logger.info("%s: rank %d on %d matrices", self.name, rank, len(targets))
        peft_model = get_peft_model(model, config)
        if self._mutates_base():
            from peft import get_peft_model_state_dict

            self._initial_adapter = {k: v.detach().to("cpu", copy=True)
                                     for k, v in get_peft_model_state_dict(peft_model).items()}
        return peft_model

    def build_optimizer(self, model: nn.Module, ctx: TaskContext):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = adamw(params, lr=self.lr, eps=1e-6, weight_decay=0.0)
        return optimizer, envelope_scheduler(optimizer, ctx.num_training_steps, self.warmup_ratio, self.min_lr_ratio)

    def after_task(self, model: nn.Module, optimizer, ctx: TaskContext) -> nn.Module:
        return model.merge_and_unload() if self.per_task else model
