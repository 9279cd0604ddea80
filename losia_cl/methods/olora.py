"""O-LoRA (Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual Learning") through peft.

Each task trains a fresh peft LoRA adapter on the decoder blocks' linear layers; after the task it is merged
into the (frozen) base weights, and its ``A`` matrices are kept.  The loss of a later task adds

    λ1 · Σ_layers Σ_{earlier tasks i} Σ_{j,k} |A_i A_new^T|_{jk}  +  λ2 · Σ_{new adapter params} ||p||²

(the orthogonality loss of the paper and its code: the sum of absolute values of the product, per layer and
earlier task; and an L2 penalty on the new adapter's weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from losia_cl.fields import documented
from losia_cl.methods.base import TaskContext, TaskData, is_number, register_method, require
from losia_cl.methods.peft_adapter import PeftAdapterMethod

#: The name peft gives the adapter of the task being trained.
ADAPTER = "default"


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{qualified name: peft LoRA layer}`` of ``model`` (found by type, not by name)."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


@register_method("olora")
@dataclass
class OLoRAMethod(PeftAdapterMethod):
    """A new LoRA adapter per task, orthogonal to the earlier tasks' (merged) adapters: O-LoRA."""

    per_task: bool = documented("Always true: O-LoRA trains a new adapter per task and merges it afterwards.", True)
    lambda_orth: float = documented(
        "λ1 (>= 0) of the orthogonality loss Σ |A_old A_new^T| over every layer and earlier task.", 0.5)
    lambda_l2: float = documented("λ2 (>= 0) of the L2 penalty Σ ||p||² over the new adapter's weights.", 0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.per_task is True, self.name, "per_task", self.per_task, "true (a new adapter per task)")
        for option in ("lambda_orth", "lambda_l2"):
            value = getattr(self, option)
            require(is_number(value) and 0 <= value < float("inf"), self.name, option, value, "a finite number >= 0")
        #: ``{LoRA layer name: the earlier tasks' A matrices stacked, (Σ ranks, d_in)}``
        self._old_a: dict[str, Tensor] = {}
        self._record: dict[str, Any] = {}

    # ------------------------------------------------------------------ the loss
    def orthogonality(self, model: nn.Module) -> Tensor | None:
        """Σ_layers Σ_{j,k} |A_old A_new^T| (the earlier tasks' A stacked; None before the first task ends)."""
        total: Tensor | None = None
        for name, layer in lora_layers(model).items():
            old = self._old_a.get(name)
            if old is None or ADAPTER not in layer.lora_A:
                continue
            new = layer.lora_A[ADAPTER].weight
            if old.device != new.device:  # restored from a checkpoint onto the CPU
                self._old_a[name] = old = old.to(new.device)
            term = (old.to(new.dtype) @ new.t()).abs().sum()
            total = term if total is None else total + term
        return total

    def penalty(self, model: nn.Module) -> Tensor | None:
        terms = []
        if self.lambda_orth > 0:
            orthogonality = self.orthogonality(model)
            if orthogonality is not None:
                terms.append(self.lambda_orth * orthogonality)
        if self.lambda_l2 > 0:
            params = [p for p in model.parameters() if p.requires_grad]
            if params:
                terms.append(self.lambda_l2 * sum(p.float().square().sum() for p in params))
        return sum(terms[1:], terms[0]) if terms else None

    def consolidate(self, model: nn.Module, data: TaskData, ctx: TaskContext) -> None:
        """Keep the finished task's A matrices (its adapter is merged by :meth:`after_task`)."""
        with torch.no_grad():
            orthogonality = self.orthogonality(model)
        for name, layer in lora_layers(model).items():
            new = layer.lora_A[ADAPTER].weight.detach().clone()
            old = self._old_a.get(name)
            self._old_a[name] = new if old is None else torch.cat([old.to(new.device), new])
        self._record = {
            "orthogonality_at_task_end": None if orthogonality is None else float(orthogonality),
            "kept_a_bytes": sum(v.numel() * v.element_size() for v in self._old_a.values()),
        }

    def describe(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return dict(self._record)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Tensor]:
        return dict(self._old_a)

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        if not all(isinstance(v, Tensor) and v.dim() == 2 for v in state.values()):
            raise ValueError("olora state must hold one 2-d tensor of earlier A matrices per LoRA layer")
        self._old_a = dict(state)
