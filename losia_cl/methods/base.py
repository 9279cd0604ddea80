"""The contract every training method fulfils, the optional subnet contract, and the method registry."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from losia_cl.errors import ConfigError
from losia_cl.registry import Registry

M = TypeVar("M", bound=type)


@dataclass(frozen=True)
class TaskContext:
    """What the trainer tells a method about the task it is about to train."""

    task_index: int  #: 0-based position of the task in the stream
    num_tasks: int
    num_training_steps: int  #: optimizer steps this task will take
    seed: int


@dataclass(frozen=True)
class TargetWeight:
    """The effective ``(d_out, d_in)`` weight of one target matrix (adapters merged), for the stability metrics.

    ``name`` is the same whatever wraps the matrix (plain, LoSiA-Pro, peft), so methods compare matrix by
    matrix; ``layer`` is the position of its decoder block in the model's block list.
    """

    name: str
    layer: int
    weight: Tensor


@runtime_checkable
class Method(Protocol):
    """A continual-learning training method (LoSiA, LoRA, full fine-tuning, ...).

    A method is a dataclass whose fields are its options (documented in ``metadata["help"]``,
    validated in ``__post_init__``).  ``prepare`` must give the same module structure for task k
    whether or not it was called for tasks 0..k-1 (so a run resumed from a checkpoint rebuilds the
    same model).
    """

    name: str

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        """Before a task: return the module to train (it may wrap ``model``)."""

    def build_optimizer(
        self, model: nn.Module, ctx: TaskContext
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """The optimizer for one task (built after :meth:`prepare`) and its scheduler, if any."""

    def after_task(self, model: nn.Module, optimizer: torch.optim.Optimizer, ctx: TaskContext) -> nn.Module:
        """After a task's training (e.g. merge an adapter); returns the module to evaluate and carry on with."""

    def target_weights(self, model: nn.Module) -> list[TargetWeight]:
        """Effective weights of the target matrices, for the stability metrics."""

    def trainable_parameters(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Number of entries the optimizer updates per step."""

    def options(self) -> dict[str, Any]:
        """The method's resolved options (JSON-able), for results.json."""

    def describe(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """What the method did during the task just trained (JSON-able; {} when there is nothing to add).

        Called once per task, after its last optimizer step and before :meth:`after_task`; stored in
        results.json under ``method_record[<task>]``.
        """


@runtime_checkable
class SubnetMethod(Method, Protocol):
    """A method that trains sub-networks (the LoSiA family): the trainer records their overlap across tasks."""

    def new_subnets(
        self, optimizer: torch.optim.Optimizer, initial: bool = False
    ) -> dict[str, tuple[Tensor, Tensor]] | None:
        """Subnets that came into force at the last optimizer step (all of them when ``initial``); None if none."""

    def subnet_layout(self, optimizer: torch.optim.Optimizer) -> dict[str, tuple[tuple[int, int], int]]:
        """``{matrix name: ((d_out, d_in), layer)}`` of the matrices :meth:`new_subnets` reports."""


@dataclass(frozen=True)
class TaskData:
    """The training data of the task just trained, as :meth:`RegularizedMethod.consolidate` sees it."""

    num_examples: int  #: training examples of the task (indices 0 .. num_examples - 1)
    #: the examples at the given indices, tokenized and collated into one batch on the model's device
    make_batch: Callable[[Sequence[int]], Mapping[str, Tensor]]
    #: the training loss of one batch (``loss_fn(model, batch)``, a scalar)
    loss_fn: Callable[[nn.Module, Mapping[str, Tensor]], Tensor]


@runtime_checkable
class RegularizedMethod(Method, Protocol):
    """A method that adds a penalty to the training loss and learns from each finished task (EWC and kin).

    Optional: a method without these hooks trains on the task loss alone, exactly as before.  The trainer
    adds :meth:`penalty` once to every optimizer step's loss, calls :meth:`consolidate` after a task's last
    step (before :meth:`~Method.describe` and :meth:`~Method.after_task`), and keeps :meth:`state_dict` in
    its checkpoints, so a resumed run continues with the same state.
    """

    def penalty(self, model: nn.Module) -> Tensor | None:
        """The scalar added to the loss of one optimizer step (differentiable in ``model``); None: nothing."""

    def consolidate(self, model: nn.Module, data: TaskData, ctx: TaskContext) -> None:
        """After the task ``ctx`` names: learn what the penalty of later tasks needs (``data``: its training data)."""

    def state_dict(self) -> dict[str, Tensor]:
        """Everything :meth:`consolidate` learned so far, as tensors (for checkpoints)."""

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""


METHODS: Registry[type] = Registry("method")


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: register a method dataclass as ``name`` (and set its ``name``).

    >>> @register_method("my-method")            # doctest: +SKIP
    ... @dataclass
    ... class MyMethod(DenseMethodDefaults): ...
    """

    def add(cls: M) -> M:
        if not is_dataclass(cls):
            raise TypeError(f"method {name!r}: {cls.__name__} must be a dataclass (its fields are its options)")
        undocumented = [f.name for f in fields(cls) if not f.metadata.get("help")]
        if undocumented:
            raise TypeError(f"method {name!r}: option(s) {undocumented} lack metadata['help'] (use fields.documented)")
        METHODS.register(name, cls)
        cls.name = name.lower()
        return cls

    return add


def option_help(name: str) -> dict[str, str]:
    """``{option: its documentation}`` of the method registered as ``name``."""
    return {f.name: f.metadata["help"] for f in fields(METHODS.get(name))}


def option_defaults(name: str) -> dict[str, Any]:
    """``{option: default}`` of the method registered as ``name``."""
    out = {}
    for f in fields(METHODS.get(name)):
        out[f.name] = f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
    return out


def options_markdown() -> str:
    """A Markdown table of every registered method's options (the one in docs/methods.md)."""
    lines = ["| method | option | default | meaning |", "|---|---|---|---|"]
    for name in METHODS.names():
        defaults = option_defaults(name)
        for key, text in option_help(name).items():
            lines.append(f"| `{name}` | `{key}` | `{json.dumps(defaults[key])}` | {text} |")
    return "\n".join(lines) + "\n"


def create_method(name: str, **options: Any) -> Method:
    """Instantiate the method registered as ``name`` with its options.

    Raises :class:`~losia_cl.errors.UnknownNameError` for an unknown method and
    :class:`~losia_cl.errors.ConfigError` for an unknown option (listing the valid ones) or a bad value.
    """
    cls = METHODS.get(name)
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"method {name}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid)}"
        )
    return cls(**options)


def require(ok: bool, method: str, option: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` ``"<method>.<option> = <value> is invalid: it must be <allowed>"`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{method}.{option} = {value!r} is invalid: it must be {allowed}")


def is_number(value: Any) -> bool:
    """A real number (bools excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
