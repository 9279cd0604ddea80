"""LoSiA and LoSiA-Pro as continual-learning methods: a fresh subnet optimizer per task."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor, nn

from losia_cl.methods.base import METHODS, TaskContext
from losia_cl.methods.weights import block_linear_weights
from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.losia import LoSiA
from losia_cl.optim.pro import unpatch
from losia_cl.optim.targets import find_targets


@METHODS.register("losia")
@dataclass
class LoSiAMethod:
    """LoSiA per task: every task gets a new :class:`LoSiA` optimizer (new subnets, new moments).

    ``period=None`` picks the slot length from the task's budget: ``clamp(steps // slots, 1, 50)``,
    so every layer re-localizes at least once per task (the paper's T = 50 suits long tasks).
    Other keyword options are :class:`LoSiAConfig` fields.
    """

    lr: float = 1e-3
    rank_factor: float = 1 / 8
    period: int | None = None
    losia_options: dict[str, Any] = field(default_factory=dict)
    name: str = "losia"
    pro: bool = False

    def config_for(self, model: nn.Module, ctx: TaskContext) -> LoSiAConfig:
        period = self.period
        if period is None:
            base = LoSiAConfig(rank_factor=self.rank_factor, **self.losia_options)
            targets = find_targets(model, base.rank_factor, base.target_modules, base.output_rank_factor)
            slots = len({t.slot for t in targets})
            period = max(1, min(50, ctx.num_training_steps // slots))
        return LoSiAConfig(
            lr=self.lr, rank_factor=self.rank_factor, period=period, pro=self.pro, seed=ctx.seed + ctx.task_index,
            **self.losia_options,
        )

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        return model

    def build_optimizer(self, model: nn.Module, ctx: TaskContext):
        return LoSiA.for_model(model, self.config_for(model, ctx), ctx.num_training_steps), None

    def new_subnets(self, optimizer: LoSiA, initial: bool = False) -> dict[str, tuple[Tensor, Tensor]] | None:
        step = optimizer.global_step
        if optimizer.schedule.in_scoring_phase(step):
            return None
        out = {}
        subnets = optimizer.subnets()
        for group in optimizer.param_groups:
            if not group["losia"]:
                continue
            last = int(optimizer.state[group["params"][0]]["last_relocalization"])
            if initial or last == step:
                out[group["name"]] = subnets[group["name"]]
        return out or None

    def subnet_layout(self, optimizer: LoSiA) -> dict[str, tuple[tuple[int, int], int]]:
        """``{target name: ((d_out, d_in), layer slot)}`` for the overlap tracker."""
        shapes = optimizer.target_shapes()
        return {g["name"]: (shapes[g["name"]], g["slot"]) for g in optimizer.param_groups if g["losia"]}

    def after_task(self, model: nn.Module, optimizer: LoSiA, ctx: TaskContext) -> nn.Module:
        optimizer.close()
        return unpatch(model)

    def target_weights(self, model: nn.Module):
        return block_linear_weights(model)

    def trainable_parameters(self, model: nn.Module, optimizer: LoSiA) -> int:
        return optimizer.num_trainable_parameters()

    def options(self) -> dict[str, Any]:
        return asdict(self)


@METHODS.register("losia-pro")
@dataclass
class LoSiAProMethod(LoSiAMethod):
    """LoSiA-Pro: LoSiA with subnet-only activations and weight gradients (the same updates)."""

    name: str = "losia-pro"
    pro: bool = True
