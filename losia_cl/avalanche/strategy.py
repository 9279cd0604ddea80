"""A causal-LM strategy on Avalanche's ``SupervisedTemplate``, driven by losia-cl's methods and trainer pieces.

One trainer's behaviour behind a second front door: per experience the strategy does what
``losia-cl run`` does per task (:class:`losia_cl.trainer.SequentialTrainer`):

* batches: :class:`losia_cl.trainer.plan.BatchPlan` orders the micro-batches (seeded
  shuffle, or file order with ``shuffle=False``), :func:`collate_text_batch` pads them;
* model and optimizer: ``method.prepare`` → ``method.build_optimizer`` (a fresh optimizer and
  the method's own schedule each experience) → ``method.after_task``, with the same
  :class:`~losia_cl.methods.TaskContext`;
* step: answer-token loss (:func:`~losia_cl.lm_loss.answer_logits`, logits only at answer
  positions) divided over ``grad_accum`` micro-batches, then :func:`~losia_cl.step.apply_update`
  (gradient-norm clipping, optimizer step, scheduler step);
* evaluation: :func:`~losia_cl.evaluator.evaluate_task` (greedy generation, the task's
  scorer) for every experience evaluated.

Avalanche's plugin callbacks fire around all of it, one iteration per micro-batch, so
replay and the evaluation plugin work as with any Avalanche strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from avalanche.benchmarks.utils.data_loader import MultiDatasetDataLoader
from avalanche.core import BasePlugin
from avalanche.training.templates import SupervisedTemplate
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from losia_cl.avalanche.benchmark import collate_text_batch, experience_task
from losia_cl.avalanche.metrics import default_lm_evaluator
from losia_cl.avalanche.stock import quiet_known_warnings
from losia_cl.errors import ConfigError, DataError
from losia_cl.evaluator import TaskEvaluation, evaluate_task
from losia_cl.lm_loss import answer_cross_entropy, answer_logits
from losia_cl.methods import Method, RegularizedMethod, SubnetMethod, TaskContext, create_method
from losia_cl.step import apply_update
from losia_cl.streams.tokenization import IGNORE_INDEX, pad_token_id
from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.plan import BatchPlan

logger = logging.getLogger(__name__)

__all__ = ["AnswerTokenLoss", "CausalLMStrategy", "IncompatiblePluginError", "REFUSED_PLUGINS", "REFUSED_WITH_PRO",
           "check_plugins"]

_TUPLES = "reads mini-batches as (x, y, task) tuples"
#: Avalanche 0.6 plugins that cannot work with text dict mini-batches, and why (matched by class name in the MRO).
REFUSED_PLUGINS: dict[str, str] = {
    "EWCPlugin": f"computes Fisher importances with a classification loss on model(x), and {_TUPLES}",
    "MASPlugin": f"computes importances from model(x) and {_TUPLES}",
    "RWalkPlugin": f"computes importances with a classification loss on model(x), and {_TUPLES}",
    "AGEMPlugin": f"computes reference gradients on buffer samples and {_TUPLES}",
    "GEMPlugin": f"computes per-experience gradients on buffer samples and {_TUPLES}",
    "LwFPlugin": "distils the previous model's class logits, calling the model on strategy.mb_x as one tensor",
    "LFLPlugin": "distils features computed from strategy.mb_x as one tensor",
    "FeatureDistillationPlugin": "distils features computed from strategy.mb_x as one tensor",
    "BiCPlugin": "corrects the bias of class logits, calling the model on strategy.mb_x as one tensor",
    "MIRPlugin": f"ranks buffer samples by a per-class loss and {_TUPLES}",
    "GSS_greedyPlugin": "scores samples by per-example gradients of tensor inputs",
    "GDumbPlugin": "fills a class-balanced buffer from class targets, which text tasks do not have",
    "CWRStarPlugin": "consolidates a class-output layer from class targets",
    "CoPEPlugin": "learns class prototypes from class targets",
    "RARPlugin": "perturbs tensor inputs adversarially",
    "GenerativeReplayPlugin": "replays samples of a generative model of tensor inputs",
    "TrainGeneratorAfterExpPlugin": "trains a generative model of tensor inputs",
    "CurrentDataNCMUpdate": "updates the class means of a nearest-class-mean classifier",
    "MemoryNCMUpdate": "updates the class means of a nearest-class-mean classifier",
    "NCMOracle": "updates the class means of a nearest-class-mean classifier",
    "CurrentDataFeCAMUpdate": "updates the class statistics of a FeCAM classifier",
    "MemoryFeCAMUpdate": "updates the class statistics of a FeCAM classifier",
    "FeCAMOracle": "updates the class statistics of a FeCAM classifier",
    "LRSchedulerPlugin": "schedules the learning rate, but each method builds its own schedule per experience "
                         "(LoSiA's included); set it through the method's options (lr, warmup_ratio, ...)",
}


class IncompatiblePluginError(ConfigError):
    """An Avalanche plugin that cannot work with :class:`CausalLMStrategy` (its text dict mini-batches)."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin = plugin
        super().__init__(
            f"{plugin} cannot be used with CausalLMStrategy: it {reason}. This strategy trains on dict "
            "mini-batches (input_ids, attention_mask, labels masked on the prompt) and its outputs are "
            "answer-token logits, not class logits. ReplayPlugin and the evaluation plugin (metrics and "
            "loggers) work; see docs/avalanche.md"
        )


#: Plugins that work with text batches but not with LoSiA-Pro (``pro=True``), which swaps the decoder's
#: linear layers for subnet layers during every experience.
REFUSED_WITH_PRO: dict[str, str] = {
    "SynapticIntelligencePlugin": "keys its per-parameter state by parameter name, and LoSiA-Pro swaps the linear "
                                  "layers (and their parameter names) during every experience; use method='losia' with "
                                  "method_options={'losia_options': {'pro': False}}, which trains the same updates",
}


def check_plugins(plugins: Sequence[Any], method: Any = None) -> None:
    """Raise :class:`IncompatiblePluginError` naming the first plugin known not to work with text batches.

    ``method``: the strategy's method, for plugins that only some methods cannot serve.
    """
    pro = bool(getattr(method, "pro", False))
    for plugin in plugins:
        for cls in type(plugin).__mro__:
            reason = REFUSED_PLUGINS.get(cls.__name__) or (REFUSED_WITH_PRO.get(cls.__name__) if pro else None)
            if reason is not None:
                raise IncompatiblePluginError(type(plugin).__name__, reason)


class AnswerTokenLoss(nn.Module):
    """Criterion: mean cross-entropy of answer-position logits against the answer tokens (``losia-cl run``'s loss)."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return answer_cross_entropy(logits, targets)


class _EpochBatchSampler(Sampler[list[int]]):
    """Yields the planned micro-batches of the epoch the strategy's clock is in."""

    def __init__(self, epochs: list[list[list[int]]], epoch: Callable[[], int]) -> None:
        self.epochs = epochs
        self.epoch = epoch

    def _current(self) -> list[list[int]]:
        index = self.epoch()
        return self.epochs[index] if 0 <= index < len(self.epochs) else []

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(b) for b in self._current()])

    def __len__(self) -> int:
        return len(self._current())


def _placeholder_optimizer() -> torch.optim.Optimizer:
    """What ``strategy.optimizer`` is between experiences (the method builds the real one per experience)."""
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)


class CausalLMStrategy(SupervisedTemplate):
    """Continual learning of a causal LM with a losia-cl method (LoSiA, LoSiA-Pro, LoRA, full, ...).

    Mini-batches are dicts (``input_ids``, ``attention_mask``, ``labels`` with -100 on the
    prompt, ``task_labels``) from :func:`~losia_cl.avalanche.as_benchmark`.  The strategy's
    "patterns" are answer tokens: ``mb_output`` holds logits only at the positions that predict
    an answer token (``[answer tokens, vocab]``, never ``[batch, length, vocab]``), ``mb_y`` the
    answer tokens and ``mb_task_id`` their task labels, so Avalanche's loss and accuracy metrics
    measure teacher-forced answer-token loss and accuracy.

    Each experience gets ``method.prepare`` and a fresh ``method.build_optimizer`` (with the
    method's scheduler); ``method.after_task`` runs after its training.  Evaluation runs the
    teacher-forced loss pass (``eval_loss``) and greedy generation scored by the task's metric
    (``generate``); ``strategy.last_evaluation`` holds the predictions and
    :meth:`score_matrix` the scores.  The data order is ``losia-cl run``'s
    (:class:`~losia_cl.trainer.plan.BatchPlan` with ``seed``/``shuffle``); Avalanche's
    ``shuffle`` argument to ``train`` is not used.

    Arguments named as in Avalanche keep their meaning; the rest mirror :class:`RunConfig`:
    ``train_mb_size`` = ``batch_size``, ``train_epochs`` = ``epochs``, ``eval_mb_size`` =
    ``eval_batch_size`` (prompts per generation batch).  ``method`` is a registered method name
    or a :class:`~losia_cl.methods.Method`; ``method_options`` its options (``lr`` included).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        tokenizer: Any,
        method: str | Method = "losia",
        method_options: dict[str, Any] | None = None,
        train_mb_size: int = 8,
        train_epochs: int = 1,
        grad_accum: int = 1,
        max_steps: int | None = None,
        max_grad_norm: float | None = 1.0,
        shuffle: bool = True,
        seed: int = 0,
        eval_mb_size: int = 32,
        eval_loss: bool = True,
        generate: bool = True,
        device: str | torch.device = "cpu",
        plugins: Sequence[BasePlugin] | None = None,
        evaluator: Any = default_lm_evaluator,
        eval_every: int = -1,
        peval_mode: str = "epoch",
        **kwargs: Any,
    ) -> None:
        if isinstance(method, str):
            self.method: Method = create_method(method, **dict(method_options or {}))
        else:
            if method_options:
                raise ConfigError("method_options: give options only with a method name, not a Method instance")
            self.method = method
        self.method_name = getattr(self.method, "name", type(self.method).__name__)
        if isinstance(self.method, RegularizedMethod):
            raise ConfigError(f"CausalLMStrategy: method {self.method_name} adds a penalty to the loss and learns "
                              "after each task, which this strategy does not run; train it with losia-cl run")
        try:
            self._plan = BatchPlan(epochs=train_epochs, batch_size=train_mb_size, grad_accum=grad_accum,
                                   max_steps=max_steps, shuffle=shuffle, seed=seed)
        except ConfigError as error:
            message = str(error)
            for ours, theirs in (("batch_size", "train_mb_size"), ("epochs", "train_epochs")):
                if message.startswith(ours + " "):
                    message = theirs + message[len(ours):]
            raise ConfigError(f"CausalLMStrategy: {message}") from None
        if isinstance(eval_mb_size, bool) or not isinstance(eval_mb_size, int) or eval_mb_size < 1:
            raise ConfigError(f"CausalLMStrategy: eval_mb_size = {eval_mb_size!r} is invalid: it must be an integer >= 1")
        if max_grad_norm is not None and not max_grad_norm >= 0:
            raise ConfigError(f"CausalLMStrategy: max_grad_norm = {max_grad_norm!r} is invalid: it must be >= 0")
        check_plugins(plugins or [], self.method)
        super().__init__(
            model=model, optimizer=_placeholder_optimizer(), criterion=AnswerTokenLoss(),
            train_mb_size=train_mb_size, train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device,
            plugins=plugins, evaluator=evaluator,
            eval_every=eval_every, peval_mode=peval_mode, **kwargs,
        )
        self.tokenizer = tokenizer
        self.grad_accum = grad_accum
        self.max_steps = max_steps
        self.max_grad_norm = max_grad_norm
        self.shuffle = shuffle
        self.seed = seed
        self.eval_loss = eval_loss
        self.generate = generate
        self._collate = _Collate(pad_token_id(tokenizer))
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        #: Experiences trained so far (the row of the score matrix an evaluation fills).
        self.trained_experiences = 0
        #: ``{task name: [loss of every optimizer step]}``, as in ``losia-cl run``'s results.
        self.losses: dict[str, list[float]] = {}
        #: ``{task name: optimizer steps}``.
        self.steps: dict[str, int] = {}
        #: ``{stream name: {stage: {experience id: TaskEvaluation}}}`` (scores and predictions); stage 0 = before
        #: any training, stage i = after i experiences.
        self.evaluations: dict[str, dict[int, dict[int, TaskEvaluation]]] = {}
        #: The last experience's generation results (predictions and score).
        self.last_evaluation: TaskEvaluation | None = None
        #: Subnets that came into force at the last optimizer step (all of them right after the optimizer is built).
        self.new_subnets: dict[str, tuple[Tensor, Tensor]] | None = None
        self.trainable_parameters = 0
        #: ``{task name: method.describe(optimizer)}`` after each experience's training, as in ``results.json``.
        self.method_record: dict[str, dict[str, Any]] = {}
        self._ctx: TaskContext | None = None
        self._in_experience = False  # between an experience's optimizer and its after_task
        self._task_name = ""
        self._group_sizes: list[int] = []
        self._steps_done = 0
        self._micro_in_step = 0
        self._step_loss = 0.0
        self._micro_per_epoch = 0

    @classmethod
    def from_config(
        cls, config: RunConfig, *, model: nn.Module, tokenizer: Any, method: str | None = None, **kwargs: Any
    ) -> CausalLMStrategy:
        """The strategy doing what ``losia-cl run`` does with ``config`` for ``method`` (default: its first).

        Tokenization settings (``max_length``, ``chat_template``) belong to the benchmark: pass
        them to :func:`~losia_cl.avalanche.as_benchmark`.  ``kwargs`` (plugins, evaluator,
        eval_every, ...) go to the constructor.
        """
        from losia_cl.trainer.experiment import resolve_device

        name = method or config.methods[0]
        settings = dict(
            method=name, method_options=config.options_for(name), train_mb_size=config.batch_size,
            train_epochs=config.epochs, grad_accum=config.grad_accum, max_steps=config.max_steps,
            max_grad_norm=config.max_grad_norm, shuffle=config.shuffle, seed=config.seed,
            eval_mb_size=config.eval_batch_size, device=resolve_device(config.device),
        )
        settings.update(kwargs)
        return cls(model=model, tokenizer=tokenizer, **settings)

    # ------------------------------------------------------------------ mini-batches
    def _unpack_minibatch(self) -> None:
        if not isinstance(self.mbatch, dict):
            raise DataError(
                f"CausalLMStrategy expects dict mini-batches (input_ids, attention_mask, labels), got "
                f"{type(self.mbatch).__name__}: build the benchmark with losia_cl.avalanche.as_benchmark"
            )
        self.mbatch = {k: v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v
                       for k, v in self.mbatch.items()}

    @property
    def mb_x(self) -> dict[str, Tensor]:
        """The model inputs of the current mini-batch (``input_ids``, ``attention_mask``)."""
        return {"input_ids": self.mbatch["input_ids"], "attention_mask": self.mbatch["attention_mask"]}

    @property
    def mb_y(self) -> Tensor:
        """The answer tokens the current mini-batch's answer positions predict (1-D, row-major)."""
        targets = self.mbatch["labels"][:, 1:]
        return targets[targets != IGNORE_INDEX]

    @property
    def mb_task_id(self) -> Tensor:
        """The task label of every answer token of the current mini-batch (aligned with :attr:`mb_y`)."""
        per_row = (self.mbatch["labels"][:, 1:] != IGNORE_INDEX).sum(dim=1)
        labels = self.mbatch.get("task_labels")
        if labels is None:
            labels = torch.zeros(per_row.shape[0], dtype=torch.long, device=per_row.device)
        return labels.repeat_interleave(per_row)

    def forward(self) -> Tensor:
        """Logits at the answer positions only, ``[answer tokens, vocab]``."""
        batch = self.mbatch
        logits, _ = answer_logits(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        return logits

    # ------------------------------------------------------------------ data loaders
    def make_train_dataloader(self, num_workers: int = 0, pin_memory: bool | None = None,
                              persistent_workers: bool = False, **kwargs: Any) -> None:
        """Micro-batches in ``losia-cl run``'s order (:class:`BatchPlan`), padded by our collate function."""
        assert self.adapted_dataset is not None and self.experience is not None
        count = len(self.adapted_dataset)
        plan = self._plan.steps(count, self.experience.current_experience)
        self._group_sizes = [len(step) for step in plan]
        self._micro_per_epoch = self._plan.micro_batches_per_epoch(count)
        micro = [batch for step in plan for batch in step]
        epochs = [micro[e * self._micro_per_epoch:(e + 1) * self._micro_per_epoch] for e in range(self.train_epochs)]
        self.dataloader = DataLoader(
            self.adapted_dataset, batch_sampler=_EpochBatchSampler(epochs, lambda: self.clock.train_exp_epochs),
            collate_fn=self._collate, num_workers=num_workers, generator=self._loader_generator(),
            pin_memory=self.device.type == "cuda" if pin_memory is None else pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
        )

    def _loader_generator(self) -> torch.Generator:
        # A DataLoader draws its workers' base seed from this generator; without one it would draw from
        # the global RNG, which methods use to initialise adapters (LoRA), and `losia-cl run` does not.
        return torch.Generator().manual_seed(self.seed)

    def make_eval_dataloader(self, num_workers: int = 0, pin_memory: bool | None = None,
                             persistent_workers: bool = False, **kwargs: Any) -> None:
        assert self.adapted_dataset is not None
        self.dataloader = DataLoader(
            self.adapted_dataset, batch_size=self.eval_mb_size, shuffle=False, collate_fn=self._collate,
            num_workers=num_workers, generator=self._loader_generator(), pin_memory=self.device.type == "cuda" if pin_memory is None else pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
        )

    # ------------------------------------------------------------------ model and optimizer per experience
    def check_model_and_optimizer(self, **kwargs: Any) -> None:
        self.model = self.model_adaptation()
        self.make_optimizer(**kwargs)

    def make_optimizer(self, **kwargs: Any) -> None:
        """``method.prepare`` then a fresh ``method.build_optimizer`` for this experience."""
        assert self.experience is not None
        index = self.experience.current_experience
        try:
            num_tasks = len(self.experience.origin_stream)
        except (AttributeError, TypeError, AssertionError):
            num_tasks = index + 1
        self._ctx = TaskContext(index, num_tasks, len(self._group_sizes), self.seed)
        self.model = self.method.prepare(self.model, self._ctx).to(self.device)
        self.model.zero_grad(set_to_none=True)
        self.optimizer, self.scheduler = self.method.build_optimizer(self.model, self._ctx)
        self.new_subnets = self._new_subnets(initial=True)
        self.trainable_parameters = self.method.trainable_parameters(self.model, self.optimizer)
        task = getattr(self.experience, "text_task", None)
        self._task_name = task.name if task is not None else f"experience {index}"
        self.losses[self._task_name] = []
        self.steps[self._task_name] = len(self._group_sizes)
        self._steps_done = self._micro_in_step = 0
        self._step_loss = 0.0
        self._in_experience = True

    def train(self, experiences, eval_streams=None, **kwargs):
        check_plugins(self.plugins, self.method)
        return super().train(experiences, eval_streams, **kwargs)

    def _before_training_exp(self, **kwargs: Any) -> None:
        super()._before_training_exp(**kwargs)
        # A plugin may have replaced the loader (ReplayPlugin): keep our collate function and batch count.
        if isinstance(self.dataloader, MultiDatasetDataLoader):
            self.dataloader.loader_kwargs["collate_fn"] = self._collate
        if not isinstance(self.dataloader, DataLoader) or not isinstance(self.dataloader.batch_sampler,
                                                                         _EpochBatchSampler):
            length = len(self.dataloader) if hasattr(self.dataloader, "__len__") else None
            if length is not None and length != self._micro_per_epoch:
                raise ConfigError(
                    f"a plugin's training loader yields {length} mini-batches per epoch, but the strategy planned "
                    f"{self._micro_per_epoch} (ceil({len(self.adapted_dataset)} / train_mb_size "
                    f"{self.train_mb_size})) and built the method's schedule for them; give the plugin the "
                    "strategy's batch size (e.g. ReplayPlugin(batch_size=None))"
                )

    # ------------------------------------------------------------------ training
    def training_epoch(self, **kwargs: Any) -> None:
        """One Avalanche iteration per micro-batch; an optimizer step every ``grad_accum`` of them."""
        for self.mbatch in self.dataloader:
            if self._steps_done >= len(self._group_sizes):
                break
            self._unpack_minibatch()
            self._before_training_iteration(**kwargs)
            if self._micro_in_step == 0:
                # Gradients live from a step's first backward to the next step's start (Avalanche's
                # convention: after_update plugins see them); `losia-cl run` frees them right after the
                # step, which changes neither the updates nor the peak memory.
                self.optimizer.zero_grad(set_to_none=True)
            self.loss = self._make_empty_loss()
            self._before_forward(**kwargs)
            self.mb_output = self.forward()
            self._after_forward(**kwargs)
            self.loss += self.criterion()
            self._before_backward(**kwargs)
            self.backward()
            self._after_backward(**kwargs)
            self._micro_in_step += 1
            if self._micro_in_step == self._group_sizes[self._steps_done]:
                self._before_update(**kwargs)
                self.optimizer_step()
                self._after_update(**kwargs)
                self.losses[self._task_name].append(self._step_loss)
                self._steps_done += 1
                self._micro_in_step, self._step_loss = 0, 0.0
            self._after_training_iteration(**kwargs)

    def backward(self) -> None:
        """Backward of the loss divided over the micro-batches of the current optimizer step."""
        scaled = self.loss / self._group_sizes[self._steps_done]
        scaled.backward(retain_graph=self.retain_graph)
        self._step_loss += scaled.item()

    def optimizer_step(self) -> None:
        """Clip the gradient norm, step the optimizer and the method's scheduler, note the new subnets."""
        apply_update(self.model, self.optimizer, self.scheduler, max_grad_norm=self.max_grad_norm, zero_grad=False)
        self.new_subnets = self._new_subnets()

    def _new_subnets(self, initial: bool = False) -> dict[str, tuple[Tensor, Tensor]] | None:
        if not isinstance(self.method, SubnetMethod):
            return None
        return self.method.new_subnets(self.optimizer, initial=initial)

    def _after_training_exp(self, **kwargs: Any) -> None:
        if self._micro_in_step:
            logger.warning("%s: %d micro-batches after the last optimizer step were not applied",
                           self._task_name, self._micro_in_step)
        assert self._ctx is not None
        self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)
        self.method_record[self._task_name] = self.method.describe(self.optimizer)
        self.model = self.method.after_task(self.model, self.optimizer, self._ctx).to(self.device)
        self.optimizer, self.scheduler = _placeholder_optimizer(), None
        self.trained_experiences += 1
        self._in_experience = False
        with quiet_known_warnings():  # ReplayPlugin calls a storage-policy method Avalanche marks deprecated
            super()._after_training_exp(**kwargs)

    # ------------------------------------------------------------------ evaluation
    def _eval_exp(self, **kwargs: Any) -> None:
        """Teacher-forced loss pass (``eval_loss``), then greedy generation scored by the task's metric."""
        self.last_evaluation = None
        if self.eval_loss:
            self.eval_epoch(**kwargs)
        if not self.generate:
            return
        assert self.experience is not None
        task, encoding = experience_task(self.experience)
        self.last_evaluation = evaluate_task(
            self.model, self.tokenizer, task, batch_size=self.eval_mb_size, max_length=encoding.max_length,
            chat_template=encoding.chat_template, device=self.device,
        )
        if self._in_experience:
            return  # a periodic evaluation inside an experience (eval_every > 0): not a row of the score matrix
        stream = self.experience.origin_stream.name
        stage = self.evaluations.setdefault(stream, {}).setdefault(self.trained_experiences, {})
        stage[self.experience.current_experience] = self.last_evaluation

    def score_matrix(self, stream: str = "test") -> list[list[float]]:
        """``(T+1) × T`` scores on ``stream``: row 0 before training, row i after i experiences.

        Every stage must have been evaluated on every experience (``eval_every=0`` with
        ``eval_streams=[benchmark.test_stream]``, or ``strategy.eval(benchmark.test_stream)``
        before training and after each experience).
        """
        stages = self.evaluations.get(stream)
        if not stages:
            raise DataError(f"no scores on the {stream!r} stream: evaluate it (strategy.eval) with generate=True")
        tasks = 1 + max(e for row in stages.values() for e in row)
        missing = [(s, e) for s in range(self.trained_experiences + 1) for e in range(tasks)
                   if e not in stages.get(s, {})]
        if missing:
            stage, exp = missing[0]
            raise DataError(
                f"score matrix of the {stream!r} stream: experience {exp} was not evaluated at stage {stage} "
                f"({len(missing)} entries missing); evaluate the whole stream before training and after every "
                "experience (eval_every=0 and eval_streams=[benchmark.test_stream] do that)"
            )
        return [[stages[s][e].score for e in range(tasks)] for s in range(self.trained_experiences + 1)]

    def results(self, stream: str = "test") -> dict[str, Any]:
        """The parts of ``losia-cl run``'s ``results.json`` this front door produces."""
        from losia_cl.metrics import cl_metrics

        scores = self.score_matrix(stream)
        return {
            "method": self.method_name,
            "method_options": self.method.options(),
            "tasks": list(self.losses),
            "scores": scores,
            "metrics": cl_metrics(scores).to_dict(),
            "trainable_parameters": self.trainable_parameters,
            "seed": self.seed,
            "steps": dict(self.steps),
            "losses": {k: list(v) for k, v in self.losses.items()},
            "method_record": dict(self.method_record),
        }


class _Collate:
    """Picklable collate function (worker processes) padding with the tokenizer's pad id."""

    def __init__(self, pad: int) -> None:
        self.pad = pad

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Tensor]:
        return collate_text_batch(features, pad_token_id=self.pad)
