"""Elastic weight consolidation (Kirkpatrick et al. 2017) in its online form (Schwarz et al. 2018, γ = 1).

Full fine-tuning (the ``full`` method's AdamW and envelope) plus the penalty

    λ/2 · Σ_i F_i (θ_i − θ*_i)²

where θ* are the weights at the end of the last task trained and F is the diagonal Fisher information
**summed** over every earlier task: after task t, F ← F + F_t, with F_t the mean over (at most
``fisher_examples``) training examples of task t of the squared gradient of that example's loss (the
mean cross-entropy of its answer tokens) at θ*.  One anchor and one Fisher, whatever the number of
tasks: the online-EWC / Huszár (2018) form of the multi-task penalty, not Kirkpatrick's one penalty per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from losia_cl.fields import documented
from losia_cl.methods.base import TaskContext, TaskData, register_method, require
from losia_cl.methods.full import FullFineTuning

#: The most training examples the Fisher may be estimated on (each costs one forward and backward pass).
MAX_FISHER_EXAMPLES = 1_000_000


def fisher_diagonal(model: nn.Module, data: TaskData, indices: list[int]) -> dict[str, Tensor]:
    """``{parameter name: mean over indices of the squared gradient of one example's loss}`` (float32).

    Every trainable parameter gets an entry (zeros where no example reaches it); the model's
    gradients are left cleared.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    training = model.training
    model.eval()
    try:
        for index in indices:
            for p in params.values():
                p.grad = None
            data.loss_fn(model, data.make_batch([index])).backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name].add_(p.grad.detach().float().square())
    finally:
        for p in params.values():
            p.grad = None
        model.train(training)
    for value in fisher.values():
        value.div_(max(1, len(indices)))
    return fisher


@register_method("ewc")
@dataclass
class EWCMethod(FullFineTuning):
    """Full fine-tuning with an elastic-weight-consolidation penalty (online EWC: Fishers summed over tasks)."""

    lam: float = documented(
        "λ (> 0) of the penalty λ/2 · Σ F (θ − θ*)²; F is the summed diagonal Fisher of the earlier tasks.",
        1e4)
    fisher_examples: int = documented(
        "Training examples (1 to 1,000,000) of each task the Fisher is estimated on, a seeded sample "
        "(all of them when the task has fewer); each costs a forward and backward pass.", 256)

    def __post_init__(self) -> None:
        super().__post_init__()
        #: the summed Fisher and the anchor θ*, by parameter name (empty before the first task ends)
        self._fisher: dict[str, Tensor] = {}
        self._anchor: dict[str, Tensor] = {}
        self._record: dict[str, Any] = {}
        require(isinstance(self.lam, (int, float)) and not isinstance(self.lam, bool) and 0 < self.lam < float("inf"),
                self.name, "lam", self.lam, "a finite number > 0")
        require(isinstance(self.fisher_examples, int) and not isinstance(self.fisher_examples, bool)
                and 1 <= self.fisher_examples <= MAX_FISHER_EXAMPLES, self.name, "fisher_examples",
                self.fisher_examples, f"an integer from 1 to {MAX_FISHER_EXAMPLES:,}")

    # ------------------------------------------------------------------ the penalty
    def penalty(self, model: nn.Module) -> Tensor | None:
        """λ/2 · Σ F (θ − θ*)² over the parameters consolidated so far (None before the first task ends)."""
        if not self._fisher:
            return None
        total: Tensor | None = None
        for name, p in model.named_parameters():
            fisher = self._fisher.get(name)
            if fisher is None:
                continue
            if fisher.device != p.device:  # restored from a checkpoint onto the CPU
                self._fisher[name] = fisher = fisher.to(p.device)
                self._anchor[name] = self._anchor[name].to(p.device)
            term = (fisher * (p.float() - self._anchor[name].float()).square()).sum()
            total = term if total is None else total + term
        return None if total is None else 0.5 * self.lam * total

    def consolidate(self, model: nn.Module, data: TaskData, ctx: TaskContext) -> None:
        """Add this task's Fisher (at the weights it ended with) to the sum, and anchor the penalty there.

        After the stream's last task nothing later would use them: only the record is updated.
        """
        with torch.no_grad():
            before = self.penalty(model)
        last = ctx.task_index == ctx.num_tasks - 1
        generator = torch.Generator().manual_seed(ctx.seed * 1_000_003 + ctx.task_index + 7_919)
        order = torch.randperm(data.num_examples, generator=generator)
        indices = [] if last else order[: self.fisher_examples].tolist()
        fisher = {} if last else fisher_diagonal(model, data, indices)
        for name, value in fisher.items():
            self._fisher[name] = self._fisher[name].to(value.device) + value if name in self._fisher else value
        if not last:
            self._anchor = {name: p.detach().clone() for name, p in model.named_parameters() if name in self._fisher}
        self._record = {
            "fisher_examples": len(indices),
            "fisher_bytes": sum(v.numel() * v.element_size() for v in self._fisher.values()),
            "anchor_bytes": sum(v.numel() * v.element_size() for v in self._anchor.values()),
            "fisher_mean_entry": float(sum(v.double().sum() for v in self._fisher.values())
                                 / max(1, sum(v.numel() for v in self._fisher.values()))),
            "penalty_at_task_end": None if before is None else float(before),
        }

    def describe(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return dict(self._record)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Tensor]:
        state = {f"fisher.{name}": value for name, value in self._fisher.items()}
        state.update({f"anchor.{name}": value for name, value in self._anchor.items()})
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        fisher = {k.removeprefix("fisher."): v for k, v in state.items() if k.startswith("fisher.")}
        anchor = {k.removeprefix("anchor."): v for k, v in state.items() if k.startswith("anchor.")}
        if set(fisher) != set(anchor) or len(fisher) + len(anchor) != len(state):
            raise ValueError("ewc state must hold one fisher.<name> and one anchor.<name> tensor per parameter")
        self._fisher, self._anchor = dict(fisher), dict(anchor)
