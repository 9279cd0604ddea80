"""LoSiA and LoSiA-Pro as continual-learning methods: a fresh subnet optimizer per task."""

from __future__ import annotations

import logging
import weakref
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import Tensor, nn

from losia_cl.errors import ConfigError
from losia_cl.fields import documented
from losia_cl.methods.base import TargetWeight, TaskContext, is_number, register_method, require
from losia_cl.methods.weights import block_linear_weights
from losia_cl.optim.build import build_losia
from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.losia import LoSiA
from losia_cl.optim.lr import advance_scheduler, losia_scheduler
from losia_cl.optim.pro import unpatch
from losia_cl.optim.schedule import MAX_PERIOD, fit_schedule, relocalization_counts
from losia_cl.optim.targets import find_targets

logger = logging.getLogger(__name__)

#: LoSiAConfig fields the method sets itself (its own options, or per task)
_SET_BY_METHOD = ("lr", "rank_factor", "period", "seed")


@register_method("losia")
@dataclass
class LoSiAMethod:
    """LoSiA per task: every task gets a new LoSiA optimizer (new subnets, new moments).

    Each task localizes its own subnets from its own gradients: by default the first slot scores
    every matrix (``init='importance'``) and the slot length T is fitted to the task's budget
    (:func:`~losia_cl.optim.schedule.fit_schedule`): the async schedule with the longest
    ``T <= 50`` (the paper's) that lets every layer record and re-localize, or, when that T would
    be below ``min_period``, the sync schedule with ``T = min(min_period, steps // 16)`` (at least 1), so
    that its full-gradient recording takes at most an eighth of the task.  A one-step task trains
    random subnets (``init='random'``).  ``losia_options`` holds further :class:`LoSiAConfig`
    fields (``init``, ``schedule``, ``pro``, ... given there win).
    """

    lr: float = documented("Peak learning rate (> 0) of the subnet updates.", 1e-3)
    rank_factor: float = documented("p in (0, 1]: each target matrix trains floor(p*d_out) x floor(p*d_in) entries.",
                                    1 / 8)
    period: int | None = documented(
        "Time-slot length T >= 1 in steps; null: fitted to each task's budget (T <= 50, see min_period).", None
    )
    min_period: int = documented(
        "T_min >= 1: with period null, the fewest steps each layer records importance in a slot of its own; a task "
        "too short for that uses the sync schedule (all layers record together, each step a full-gradient step) "
        "with T = min(T_min, steps // 16), at least 1.",
        4,
    )
    losia_options: dict[str, Any] = documented(
        "Further LoSiAConfig fields by name, e.g. {\"pro\": false} for the plain path or {\"init\": \"random\"} "
        "(all but lr, rank_factor, period, seed, which the method sets).", default_factory=dict,
    )

    def __post_init__(self) -> None:
        require(is_number(self.lr) and self.lr > 0, self.name, "lr", self.lr, "a number > 0")
        require(is_number(self.rank_factor) and 0 < self.rank_factor <= 1, self.name, "rank_factor", self.rank_factor,
                "in (0, 1]")
        require(self.period is None or (isinstance(self.period, int) and not isinstance(self.period, bool)
                                        and self.period >= 1), self.name, "period", self.period,
                "null or an integer >= 1")
        require(isinstance(self.min_period, int) and not isinstance(self.min_period, bool) and self.min_period >= 1,
                self.name, "min_period", self.min_period, "an integer >= 1")
        require(isinstance(self.losia_options, dict), self.name, "losia_options", self.losia_options,
                "an object of LoSiAConfig fields")
        allowed = [f.name for f in fields(LoSiAConfig) if f.name not in _SET_BY_METHOD]
        unknown = sorted(set(self.losia_options) - set(allowed))
        if unknown:
            raise ConfigError(f"{self.name}.losia_options: unknown LoSiAConfig field(s) {unknown}; "
                              f"valid fields: {', '.join(allowed)}")
        LoSiAConfig(lr=self.lr, rank_factor=self.rank_factor, **self.losia_options)  # validates the values

    @property
    def pro(self) -> bool:
        """Whether LoSiA-Pro layers are used (``losia_options["pro"]``, True by default)."""
        return bool(self.losia_options.get("pro", True))

    def config_for(self, model: nn.Module, ctx: TaskContext) -> LoSiAConfig:
        """The task's :class:`LoSiAConfig`: the options, the fitted schedule and a per-task seed."""
        # a one-step task cannot score first and then train: it trains its random initial subnets
        options = {"init": "importance" if ctx.num_training_steps >= 2 else "random", **self.losia_options}
        period = self.period
        if period is None:
            base = LoSiAConfig(rank_factor=self.rank_factor, **options)
            targets = find_targets(
                model, base.rank_factor, base.target_modules, base.output_rank_factor,
                head_first=base.output_slot == "first", rounding=base.subnet_rounding,
            )
            slots = len({t.slot for t in targets})
            period, mode = fit_schedule(ctx.num_training_steps, slots, base.init, self.min_period, MAX_PERIOD)
            options.setdefault("schedule", mode)
        return LoSiAConfig(
            lr=self.lr, rank_factor=self.rank_factor, period=period, seed=ctx.seed + ctx.task_index, **options
        )

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        return model

    def build_optimizer(self, model: nn.Module, ctx: TaskContext):
        """A fresh LoSiA and its warm-up + cosine envelope (a ``LambdaLR`` over the task's steps)."""
        optimizer = build_losia(model, self.config_for(model, ctx))
        scheduler = losia_scheduler(optimizer, ctx.num_training_steps)
        c, schedule = optimizer.config, optimizer.schedule
        counts = relocalization_counts(schedule, ctx.num_training_steps)  # what the schedule plans
        logger.info(
            "%s task %d/%d: %d steps, %d slots, T=%d, %s schedule, init=%s, re-localizations per layer: %s",
            self.name, ctx.task_index + 1, ctx.num_tasks, ctx.num_training_steps, schedule.num_slots, c.period,
            c.schedule, c.init, _span(counts),
        )
        optimizer.register_load_state_dict_post_hook(_legacy_scheduler_sync(scheduler))
        return optimizer, scheduler

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
        """The task's resolved :class:`LoSiAConfig`, its schedule and what it did.

        ``relocalizations_per_layer``: ``{slot: re-localizations}`` in this task (the fewest among
        the slot's matrices; slot i is decoder block i, the output head when a target is the last
        slot, or slot 0 with ``output_slot='first'``); ``never_relocalized``: the slots with 0;
        ``clipping``: which gradient norm was clipped.
        """
        c = optimizer.config
        slots = {g["name"]: g["slot"] for g in optimizer.param_groups if g["losia"]}
        per_layer = _per_layer(optimizer.relocalization_counts(), slots)
        return {
            "config": c.to_dict(),
            "schedule": {
                "period": c.period, "mode": c.schedule, "init": c.init, "slots": optimizer.schedule.num_slots,
                "fitted": self.period is None, "min_period": self.min_period,
            },
            "steps": optimizer.global_step,
            "relocalizations_per_layer": {str(slot): n for slot, n in per_layer.items()},
            "never_relocalized": [slot for slot, n in per_layer.items() if n == 0],
            "clipping": "LoSiA.clip_grad_norm_ (the entries the step applies)" if optimizer.clip_count else "none",
        }


@register_method("losia-pro")
@dataclass
class LoSiAProMethod(LoSiAMethod):
    """An alias of ``losia``, whose default is already LoSiA-Pro (subnet-only activations and weight gradients)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.pro, self.name, "losia_options", self.losia_options, "without pro=false (use losia)")


def _legacy_scheduler_sync(scheduler) -> Any:
    """A load-state-dict post hook: a state dict from before the envelope was a scheduler carries no
    scheduler state, so move ``scheduler`` to the loaded step (the learning rate the old code used)."""
    ref = weakref.ref(scheduler)

    def hook(optimizer: LoSiA) -> None:
        scheduler = ref()
        if scheduler is not None and optimizer.legacy_envelope:
            advance_scheduler(scheduler, optimizer.global_step)

    return hook


def _per_layer(counts: dict[str, int], slots: dict[str, int]) -> dict[int, int]:
    """``{slot: fewest re-localizations of its matrices}``."""
    out: dict[int, int] = {}
    for name, count in counts.items():
        out[slots[name]] = min(count, out.get(slots[name], count))
    return dict(sorted(out.items()))


def _span(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return f"{low}" if low == high else f"{low} to {high}"
