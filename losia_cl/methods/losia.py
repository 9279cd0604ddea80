"""LoSiA and LoSiA-Pro as continual-learning methods: a fresh subnet optimizer per task."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from torch import Tensor, nn

from losia_cl.errors import ConfigError
from losia_cl.fields import documented
from losia_cl.methods.base import TargetWeight, TaskContext, is_number, register_method, require
from losia_cl.methods.weights import block_linear_weights
from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.losia import LoSiA
from losia_cl.optim.pro import unpatch
from losia_cl.optim.targets import find_targets

#: LoSiAConfig fields the method sets itself (its own options, or per task).
_SET_BY_METHOD = ("lr", "rank_factor", "period", "pro", "seed")


@register_method("losia")
@dataclass
class LoSiAMethod:
    """LoSiA per task: every task gets a new LoSiA optimizer (new subnets, new moments).

    ``period=None`` picks the slot length from the task's budget: ``clamp(steps // slots, 1, 50)``,
    so every layer re-localizes at least once per task (the paper's T = 50 suits long tasks).
    """

    lr: float = documented("Peak learning rate (> 0) of the subnet updates.", 1e-3)
    rank_factor: float = documented("p in (0, 1]: each target matrix trains floor(p*d_out) x floor(p*d_in) entries.",
                                    1 / 8)
    period: int | None = documented(
        "Time-slot length T >= 1 in steps; null: clamp(steps per task // number of slots, 1, 50).", None
    )
    losia_options: dict[str, Any] = documented(
        "Further LoSiAConfig fields by name, e.g. {\"schedule\": \"sync\"} (all but lr, rank_factor, period, pro, "
        "seed, which the method sets).", default_factory=dict,
    )
    pro: ClassVar[bool] = False

    def __post_init__(self) -> None:
        require(is_number(self.lr) and self.lr > 0, self.name, "lr", self.lr, "a number > 0")
        require(is_number(self.rank_factor) and 0 < self.rank_factor <= 1, self.name, "rank_factor", self.rank_factor,
                "in (0, 1]")
        require(self.period is None or (isinstance(self.period, int) and not isinstance(self.period, bool)
                                        and self.period >= 1), self.name, "period", self.period,
                "null or an integer >= 1")
        require(isinstance(self.losia_options, dict), self.name, "losia_options", self.losia_options,
                "an object of LoSiAConfig fields")
        allowed = [f.name for f in fields(LoSiAConfig) if f.name not in _SET_BY_METHOD]
        unknown = sorted(set(self.losia_options) - set(allowed))
        if unknown:
            raise ConfigError(f"{self.name}.losia_options: unknown LoSiAConfig field(s) {unknown}; "
                              f"valid fields: {', '.join(allowed)}")
        LoSiAConfig(lr=self.lr, rank_factor=self.rank_factor, pro=self.pro, **self.losia_options)  # validates values

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

    def target_weights(self, model: nn.Module) -> list[TargetWeight]:
        return block_linear_weights(model)

    def trainable_parameters(self, model: nn.Module, optimizer: LoSiA) -> int:
        return optimizer.num_trainable_parameters()

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, optimizer: LoSiA) -> dict[str, Any]:
        """The resolved :class:`LoSiAConfig` of the task."""
        return {"config": optimizer.config.to_dict()}


@register_method("losia-pro")
@dataclass
class LoSiAProMethod(LoSiAMethod):
    """LoSiA-Pro: LoSiA with subnet-only activations and weight gradients (the same updates)."""

    pro: ClassVar[bool] = True
