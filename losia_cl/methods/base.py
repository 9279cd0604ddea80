"""The small interface every training method implements, and the method registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from losia_cl.registry import Registry


@dataclass(frozen=True)
class TaskContext:
    """What the trainer tells a method about the task it is about to train."""

    task_index: int  #: 0-based position of the task in the stream
    num_tasks: int
    num_training_steps: int  #: optimizer steps this task will take
    seed: int


@runtime_checkable
class Method(Protocol):
    """A continual-learning training method (LoSiA, LoSiA-Pro, LoRA, full fine-tuning, ...).

    ``prepare`` must give the same module structure for task k whether or not it was called
    for tasks 0..k-1 (so a run resumed from a checkpoint rebuilds the same model).
    """

    name: str

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        """Before a task: return the module to train (it may wrap ``model``)."""

    def build_optimizer(
        self, model: nn.Module, ctx: TaskContext
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """The optimizer for one task (built after :meth:`prepare`) and its scheduler, if any."""

    def new_subnets(
        self, optimizer: torch.optim.Optimizer, initial: bool = False
    ) -> dict[str, tuple[Tensor, Tensor]] | None:
        """Subnets that came into force at the last optimizer step (all of them when ``initial``); None if none."""

    def subnet_layout(self, optimizer: torch.optim.Optimizer) -> dict[str, tuple[tuple[int, int], int]]:
        """``{matrix name: ((d_out, d_in), layer)}`` of the matrices :meth:`new_subnets` reports ({} if none)."""

    def after_task(self, model: nn.Module, optimizer: torch.optim.Optimizer, ctx: TaskContext) -> nn.Module:
        """After a task's training (e.g. merge an adapter); returns the module to evaluate and carry on with."""

    def target_weights(self, model: nn.Module) -> dict[str, Tensor]:
        """Effective (d_out, d_in) weights of the target matrices (adapters merged), for stability metrics."""

    def trainable_parameters(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Number of entries the optimizer updates per step."""

    def options(self) -> dict[str, Any]:
        """The method's resolved options (JSON-able), for run.json."""


METHODS: Registry[type] = Registry("method")


def create_method(name: str, **options: Any) -> Method:
    """Instantiate the method registered as ``name`` with its options."""
    return METHODS.get(name)(**options)


class DenseMethodDefaults:
    """The :class:`Method` parts shared by methods without subnets (full fine-tuning, peft adapters)."""

    def new_subnets(self, optimizer: torch.optim.Optimizer, initial: bool = False) -> None:
        return None

    def subnet_layout(self, optimizer: torch.optim.Optimizer) -> dict[str, tuple[tuple[int, int], int]]:
        return {}

    def target_weights(self, model: nn.Module) -> dict[str, tuple[int, Tensor]]:
        from losia_cl.methods.weights import block_linear_weights

        return block_linear_weights(model)

    def trainable_parameters(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def options(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)  # type: ignore[call-overload]
