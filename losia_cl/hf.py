"""LoSiA with the Hugging Face ``Trainer``.

Two ways, both taking the learning rate, weight decay, Adam settings, learning-rate schedule and
warm-up from ``TrainingArguments`` (they override the same fields of the :class:`LoSiAConfig`):

* :class:`LoSiATrainer`, a ``Trainer`` whose optimizer is LoSiA (``Trainer`` builds the schedule
  over the number of steps it computes itself, ``max_steps`` or epochs alike);
* :func:`create_optimizer_and_scheduler`, for ``Trainer(optimizers=...)`` or a loop of your own.

``Trainer(optimizer_cls_and_kwargs=(LoSiA, ...))`` cannot work: ``Trainer`` hands an optimizer
class flat parameter lists, and LoSiA needs the model's structure (its target matrices and their
layers); it stops with a message naming these helpers.

Importing this module imports ``transformers``; ``import losia_cl`` does not.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments, get_scheduler

from losia_cl.errors import ConfigError
from losia_cl.optim.build import build_losia
from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.losia import LoSiA


def config_from_args(args: TrainingArguments, config: LoSiAConfig | None = None) -> LoSiAConfig:
    """``config`` (default :class:`LoSiAConfig`) with ``lr``, ``weight_decay``, ``betas`` and ``eps`` from ``args``."""
    _check_envelope(config)
    return dataclasses.replace(
        config or LoSiAConfig(),
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )


def create_scheduler(
    optimizer: torch.optim.Optimizer, args: TrainingArguments, num_training_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler ``Trainer`` would build: ``args.lr_scheduler_type`` with ``args``' warm-up."""
    return get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.get_warmup_steps(num_training_steps),
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )


def create_optimizer_and_scheduler(
    model: nn.Module,
    args: TrainingArguments,
    config: LoSiAConfig | None = None,
    num_training_steps: int | None = None,
) -> tuple[LoSiA, torch.optim.lr_scheduler.LRScheduler]:
    """LoSiA for ``model`` and the scheduler of ``args``, e.g. for ``Trainer(optimizers=...)``.

    ``num_training_steps`` defaults to ``args.max_steps``; without either it is an error (an
    epoch-based run's step count depends on the data loader: use :class:`LoSiATrainer`).
    Move the model to its device first (LoSiA's state lives beside the weights).
    """
    if num_training_steps is None:
        if args.max_steps is None or args.max_steps <= 0:
            raise ConfigError(
                "create_optimizer_and_scheduler: TrainingArguments.max_steps is not set; pass num_training_steps= "
                "or use losia_cl.hf.LoSiATrainer, which takes the step count from the Trainer"
            )
        num_training_steps = args.max_steps
    optimizer = build_losia(model, config_from_args(args, config))
    return optimizer, create_scheduler(optimizer, args, num_training_steps)


class LoSiATrainer(Trainer):
    """A ``Trainer`` training ``model`` with LoSiA: ``LoSiATrainer(model, args, ..., losia_config=LoSiAConfig(...))``.

    The learning rate, weight decay, Adam betas/epsilon, schedule and warm-up come from ``args``;
    the other LoSiA settings from ``losia_config``.  ``args.optim`` is not used.  Gradients are
    clipped to ``args.max_grad_norm`` by :meth:`LoSiA.clip_grad_norm_`.  The logged ``learning_rate``
    is the one LoSiA applied in the last step (:meth:`LoSiA.applied_lr`, the mean over the entries the
    step updated, each matrix at its re-warmed rate), not the scheduler's: half of it on the first step
    of a re-warm over two steps.  Call
    ``trainer.losia.close()`` after training to remove LoSiA's gradient hooks from the model
    (also done when the optimizer is garbage-collected); ``losia_cl.unpatch(model)`` turns
    LoSiA-Pro layers back into ``nn.Linear``.
    """

    def __init__(self, *args: Any, losia_config: LoSiAConfig | None = None, **kwargs: Any) -> None:
        if kwargs.get("optimizer_cls_and_kwargs") is not None:
            raise ConfigError("LoSiATrainer builds its own optimizer: drop optimizer_cls_and_kwargs")
        _check_envelope(losia_config)
        super().__init__(*args, **kwargs)
        self.losia_config = losia_config or LoSiAConfig()
        #: the learning rate LoSiA's last step applied, recorded by a hook right before the step
        self._applied_lr: list[float] = []
        self._hooked: weakref.ref | None = None  # the LoSiA carrying that hook

    @property
    def losia(self) -> LoSiA | None:
        """The LoSiA optimizer (``trainer.optimizer`` may be accelerate's wrapper around it); None before training."""
        optimizer = self.optimizer
        while optimizer is not None and not isinstance(optimizer, LoSiA):
            optimizer = getattr(optimizer, "optimizer", None)
        return optimizer

    def _clip_grad_norm(self, model: nn.Module) -> Any:
        """Clip with :meth:`LoSiA.clip_grad_norm_` (the norm of the entries the step applies; the logged
        ``grad_norm``) on one device or under DDP; FSDP, DeepSpeed and XLA keep accelerate's clipping."""
        from accelerate.utils import DistributedType

        losia = self.losia
        if losia is None or self.accelerator.distributed_type not in (DistributedType.NO, DistributedType.MULTI_GPU):
            return super()._clip_grad_norm(model)
        self.accelerator.unscale_gradients()
        return losia.clip_grad_norm_(self.args.max_grad_norm)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = self.model if model is None else model
            self.optimizer = build_losia(target, config_from_args(self.args, self.losia_config))
        losia = self.losia
        if losia is not None and (self._hooked is None or self._hooked() is not losia):
            applied = self._applied_lr  # the hook holds the list, not the Trainer

            def record(optimizer: LoSiA, *_: Any) -> None:
                applied[:] = [optimizer.applied_lr()]

            losia.register_step_pre_hook(record)
            self._hooked = weakref.ref(losia)
        return self.optimizer

    def _get_learning_rate(self) -> float:
        """The learning rate LoSiA applied in the last step (the scheduler's before the first step)."""
        if self._applied_lr:
            return self._applied_lr[0]
        return super()._get_learning_rate()


def _check_envelope(config: LoSiAConfig | None) -> None:
    """``envelope='official'`` needs losia_cl's scheduler: ``Trainer``'s schedulers would drop every re-warm."""
    if config is not None and config.envelope == "official":
        raise ConfigError(
            "LoSiAConfig.envelope = 'official' is applied by losia_cl.optim.lr.losia_scheduler, which Trainer does "
            "not use (its schedulers would drop every re-warm ramp): use envelope='current' with Trainer"
        )
