"""The sequential trainer: one method through every task of a stream, scoring every task after each.

For each task in order: prepare the model → train for the task's budget (progress bar,
checkpoints when asked for) → after-task hook → evaluate **every** task (greedy generation and the
graded log-likelihood of the references, in one pass) → the general probe (after the last task, or
after every task) → record subnet overlap and weight stability.  Row 0 of both score matrices and
the probe's reference (the base model) are given by the caller, so they are computed once for all
methods.  Where the method's time went is recorded per part (:data:`TIME_PARTS`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from losia_cl.distributed.context import DistContext
from losia_cl.evaluator import Evaluator, TaskEvaluation
from losia_cl.methods import Method, SubnetMethod, TargetWeight, TaskContext
from losia_cl.methods.spec import parse_method_spec
from losia_cl.optim.lr import applied_lr
from losia_cl.progress import progress_bar
from losia_cl.results import MethodResults
from losia_cl.step import train_step
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl.streams.types import Stream, Task
from losia_cl.timing import TIME_PARTS, Timings
from losia_cl.trainer.checkpoint import CHECKPOINT_NAME, Checkpoint, rng_state
from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.continuation import Continuation
from losia_cl.trainer.extras import TrainingExtras
from losia_cl.trainer.files import DeferredSync, atomic_write_json, atomic_write_text, inside
from losia_cl.trainer.memory import peak_memory_bytes, reset_peak_memory
from losia_cl.trainer.saved_models import ModelSaver
from losia_cl.trainer.metrics_log import MetricsLog, method_log

if TYPE_CHECKING:
    from losia_cl.metrics import StabilityTracker
    from losia_cl.retention.drift import GeneralProbe

logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """The JSON-able partial results of a method (what a checkpoint carries besides tensors)."""

    scores: list[list[float | None]]
    losses: dict[str, list[float | None]] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    updating_steps: dict[str, int] = field(default_factory=dict)
    lr_mass: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0  #: read from checkpoints of earlier versions only (now: ``timings``)
    eval_seconds: float = 0.0  #: read from checkpoints of earlier versions only (now: ``timings``)
    peak_memory_bytes: int = 0
    trainable_parameters: int = 0
    overlap: dict[str, Any] | None = None
    stability: dict[str, Any] | None = None
    method_record: dict[str, dict[str, Any]] = field(default_factory=dict)
    loglik_scores: list[list[float | None]] = field(default_factory=list)
    retention: list[dict[str, Any] | None] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _weights(records: list[TargetWeight]) -> dict[str, torch.Tensor]:
    return {r.name: r.weight for r in records}


def write_predictions(folder: Path, stage: int, evaluation: TaskEvaluation, root: Path | None = None) -> None:
    import json

    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in evaluation.predictions)
    atomic_write_text(inside(folder, "predictions", f"stage{stage}-{evaluation.task}.jsonl"), lines, root=root)


def stage_evaluator(tokenizer: Any, stream: Stream, config: RunConfig) -> Evaluator:
    """The evaluator of every task of ``stream`` (prompts tokenized once, reused at every stage), scoring the
    reference answers (the graded matrix) in the generation's forward pass."""
    return Evaluator(tokenizer, list(stream), batch_size=config.eval_batch_size, max_length=config.max_length,
                     chat_template=config.chat_template, references=True)


@dataclass(frozen=True)
class StageScores:
    """One row of each score matrix: exact-match ``scores`` and graded ``loglik`` (one value per task)."""

    scores: list[float]
    loglik: list[float]


def evaluate_stage(
    model: nn.Module, tokenizer: Any, stream: Stream, config: RunConfig, device: torch.device, folder: Path, stage: int,
    dist: DistContext | None = None,
    evaluator: Evaluator | None = None,
) -> StageScores:
    """Scores and graded scores of every task after ``stage`` tasks (predictions written under ``folder`` by
    rank 0)."""
    dist = dist or DistContext()
    evaluator = evaluator or stage_evaluator(tokenizer, stream, config)
    label = "base model" if stage == 0 else f"{folder.name} after {stream.tasks[stage - 1].name}"
    evaluations = evaluator.evaluate(model, device, progress=config.progress and dist.is_main,
                                     desc=f"evaluate {label}", dist=dist)
    if dist.is_main:
        for evaluation in evaluations:
            write_predictions(folder, stage, evaluation, root=config.out_dir)
    row = [evaluation.score for evaluation in evaluations]
    logger.info("%s: %s", label, ", ".join(f"{t.name} {s:.3f}" for t, s in zip(stream, row)))
    stats = evaluator.last_stats
    if stats is not None:
        logger.debug("%s: %d prompts in %d batches, %.1f s, %.1f new tokens/s", label, stats.prompts, stats.batches,
                     stats.seconds, stats.new_tokens_per_second)
    return StageScores(row, [float(evaluation.loglik or 0.0) for evaluation in evaluations])


def base_probe(base_model: nn.Module, tokenizer: Any, config: RunConfig, device: torch.device) -> GeneralProbe:
    """The general probe's reference on the base model (its log-probabilities and right answers)."""
    from losia_cl.retention.drift import GeneralProbe

    return GeneralProbe(base_model, tokenizer, batch_size=config.eval_batch_size, max_length=config.max_length,
                        chat_template=config.chat_template, device=device)


def base_stability(records: list[TargetWeight]) -> StabilityTracker:
    """A weight-stability tracker holding the spectra of the base model's target matrices ``records``."""
    from losia_cl.metrics import StabilityTracker

    return StabilityTracker(base={r.name: r.weight.detach() for r in records}, layers={r.name: r.layer for r in records})


def _scores_csv(tasks: list[str], scores: list[list[float]]) -> str:
    header = ",".join(["after", *tasks])
    rows = [",".join([label, *("" if v is None else f"{v:.6f}" for v in row)])
            for label, row in zip(["base", *tasks], scores)]
    return "\n".join([header, *rows]) + "\n"


class SequentialTrainer:
    """Runs one method through a stream, writing ``<out>/<method>/`` (see ``docs/results-format.md``)."""

    def __init__(
        self,
        config: RunConfig,
        stream: Stream,
        method_name: str,
        load_model: Callable[[], tuple[nn.Module, Any]],
        device: torch.device,
        base_scores: list[float],
        dist: DistContext | None = None,
        base_loglik: list[float] | None = None,
        probe: GeneralProbe | None = None,
        stability_base: StabilityTracker | None = None,
        continuation: Continuation | None = None,
    ) -> None:
        self.config = config
        #: with ``--from``: the finished run whose tasks come first in ``stream`` (they are not trained again; the
        #: general probe and weight stability, measured from the base model, are not recorded)
        self.continuation = continuation
        self.stream = stream
        self.method_name = method_name
        spec = parse_method_spec(method_name)
        self.method: Method = config.create_method(method_name)
        self.load_model = load_model
        self.device = device
        self.base_scores = base_scores
        self.base_loglik = base_loglik
        self.folder = inside(config.out_dir, method_name)
        #: the general probe's base reference: given (shared by the run's methods) or taken from the freshly
        #: loaded model by :meth:`run`; None under ``retention=False``
        self.probe = probe if config.retention and continuation is None else None
        #: the weight-stability tracker with the base model's spectra and no stage yet: given (shared by the run's
        #: methods, copied before use) or taken from the freshly loaded model by :meth:`run`
        self.stability_base = stability_base
        self.dist = dist or DistContext()
        self.parallel = None
        if self.dist.enabled:
            from losia_cl.distributed.parallel import DataParallel

            self.parallel = DataParallel(self.dist)
        #: the method's penalty and after-task learning, and replay (``losia+replay``)
        self.extras = TrainingExtras(self.method, share=config.replay_share if spec.replay else None,
                                     per_task=config.replay_per_task, seed=config.seed,
                                     world_size=self.dist.world_size)
        #: checkpoints reach the disk in the background while training and evaluation go on
        self._sync = DeferredSync()
        #: the scalars of --tensorboard and --wandb, opened by run()
        self.events = MetricsLog(stream.task_names, [])
        self.saver = ModelSaver(self.folder, config.out_dir, method_name, config.model, enabled=config.save_models,
                                every_task=config.save_every_task, writes=self.dist.is_main)

    # ------------------------------------------------------------------ helpers
    def _context(self, index: int, num_steps: int) -> TaskContext:
        return TaskContext(index, len(self.stream), num_steps, self.config.seed)

    def _train_features(self, tokenizer: Any, task: Task, replay: bool = False) -> list[dict[str, Any]]:
        """The task's training examples, encoded; with ``replay`` the replay buffer's follow them."""
        examples = list(task.train) + (self.extras.replay_examples(self.stream) if replay else [])
        return encode_examples(
            tokenizer, examples, max_length=self.config.max_length, chat_template=self.config.chat_template
        )

    def _batch_maker(self, features: list[dict[str, Any]], pad: int):
        def make_batch(indices):
            batch = collate_for_training([features[i] for i in indices], pad_token_id=pad)
            return {k: v.to(self.device) for k, v in batch.items()}

        return make_batch

    def _steps(self, progress: Progress) -> list[int]:
        """Optimizer steps of every task: those taken where known (a continued run's earlier tasks), else planned."""
        planned = self.config.steps_per_task(self.stream)
        return [progress.steps.get(task.name, n) for task, n in zip(self.stream, planned)]

    def _wandb_config(self) -> dict[str, Any]:
        """What a W&B run records as its configuration: the run's, the method and the method's options."""
        return {**self.config.to_dict(), "method": self.method_name,
                "options": self.config.options_for(self.method_name)}

    def _checkpoint(self, index: int, step: int, model: nn.Module, optimizer, scheduler, progress: Progress) -> None:
        if not self.dist.is_main:
            return
        self.events.flush()
        Checkpoint(
            task_index=index, step=step, model=model.state_dict(), optimizer=optimizer.state_dict(),
            scheduler=None if scheduler is None else scheduler.state_dict(), rng=rng_state(),
            progress=asdict(progress), extras=self.extras.state(),
        ).save(self.folder, self._sync, root=self.config.out_dir)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        """Train and evaluate the method through the stream; the scalar logs are closed even when it fails."""
        try:
            return self._run()
        except BaseException:
            self.events.close()
            raise

    def _run(self) -> dict[str, Any]:
        from losia_cl.metrics import StabilityTracker, SubnetOverlapTracker

        config = self.config
        if self.dist.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.saver.clean()
        # rank 0 reads the checkpoint and hands it to every rank (no shared file system needed)
        checkpoint = self.dist.decide(lambda: Checkpoint.load(self.folder) if config.resume else None)
        reset_peak_memory(self.device)
        cont = self.continuation
        first = cont.num_earlier if cont is not None else 0  # the first task this run trains
        if checkpoint is not None:
            progress = checkpoint.progress_as(Progress, self.folder, config.steps_per_task(self.stream))
            checkpoint.restore_extras(self.extras, self.folder)
            if not progress.timings:  # a checkpoint of an earlier losia-cl: its two totals
                progress.timings = {"train": progress.train_seconds, "evaluation": progress.eval_seconds}
            logger.info("%s: resuming at task %d, step %d", self.method_name, checkpoint.task_index, checkpoint.step)
        elif cont is not None:
            progress = Progress(**cont.initial_progress(self.method_name, self.base_scores, self.base_loglik))
        else:
            progress = Progress(scores=[list(self.base_scores)])
        timings = Timings(progress.timings)
        with timings.part("load"):
            model, tokenizer = self.load_model()
        total_parameters = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        evaluator = stage_evaluator(tokenizer, self.stream, config)
        if cont is not None and checkpoint is None:  # the saved model before the first new task: row T0
            with timings.part("evaluation"):
                stage = evaluate_stage(model, tokenizer, self.stream, config, self.device, self.folder, first,
                                       self.dist, evaluator)
            progress.scores[first], progress.loglik_scores[first] = cont.start_row(self.method_name, stage.scores,
                                                                                   stage.loglik)
            logger.info("%s: continuing %s after its %d task(s)", self.method_name, cont.run_dir, first)
        self.events = method_log(config.out_dir, self.method_name, self.stream.task_names, self._steps(progress),
                                 tensorboard=config.tensorboard and self.dist.is_main,
                                 wandb_config=self._wandb_config() if config.wandb and self.dist.is_main else None,
                                 resume_at=None if checkpoint is None else (checkpoint.task_index, checkpoint.step))
        if checkpoint is None:  # the base model's row (and a continued run's earlier rows)
            self.events.rows(progress.scores)
        if config.retention and self.probe is None and cont is None:  # the base model is fresh: take the probe's reference from it
            with timings.part("probe"):
                self.probe = self._probe(model, tokenizer)
        if not progress.loglik_scores:
            if self.base_loglik is None:  # not given (e.g. a run folder whose base row was cached without it)
                with timings.part("evaluation"):
                    self.base_loglik = [e.loglik for e in evaluator.evaluate(model, self.device, dist=self.dist)]
            progress.loglik_scores = [list(self.base_loglik)]
        if self.probe is not None and not progress.retention:
            progress.retention = [self.probe.base_point().to_dict()]
        with timings.part("metrics"):
            stability, base_weights = None, None
            if config.stability:
                records = self.method.target_weights(model)
                base_weights = {r.name: r.weight.detach().clone() for r in records}
                if progress.stability:
                    stability = StabilityTracker.from_dict(progress.stability)
                elif self.stability_base is not None and self.stability_base.matrix_names == list(base_weights):
                    stability = copy.deepcopy(self.stability_base)
                else:
                    stability = base_stability(records)
                    self.stability_base = copy.deepcopy(stability)
            overlap = SubnetOverlapTracker.from_dict(progress.overlap) if progress.overlap else SubnetOverlapTracker()
        pad = pad_token_id(tokenizer)
        last = len(self.stream) - 1

        for index, task in enumerate(self.stream):
            if index < first or (checkpoint is not None and index < checkpoint.task_index):
                if checkpoint is None:  # a continued run's earlier tasks: replay keeps examples of them too
                    self.extras.remember(task, index)
                continue
            batches = self.extras.mix(config.batch_plan.steps(len(task.train), index), len(task.train), index)
            ctx = self._context(index, len(batches))
            model = self.method.prepare(model, ctx)
            optimizer, scheduler = self.method.build_optimizer(model, ctx)
            if self.parallel is not None:
                self.parallel.check_optimizer(optimizer)
            layout = self.method.subnet_layout(optimizer) if isinstance(self.method, SubnetMethod) else {}
            overlap.start_task(task.name)
            start = 0
            if checkpoint is not None and index == checkpoint.task_index:
                checkpoint.restore(model, optimizer, scheduler, self.folder)
                start, checkpoint = checkpoint.step, None
            elif layout:
                self._record_subnets(overlap, task.name, layout, self.method.new_subnets(optimizer, initial=True))
            progress.trainable_parameters = self.method.trainable_parameters(model, optimizer)
            progress.steps[task.name] = len(batches)
            if start < len(batches):
                self._train_task(index, task, model, tokenizer, optimizer, scheduler, batches, start, pad, overlap,
                                 layout, progress, timings)
            replayed = self.extras.describe(batches, len(task.train))
            with timings.part("train"):  # e.g. EWC's Fisher
                self.extras.after_task(model, task, ctx,
                                       lambda: self._batch_maker(self._train_features(tokenizer, task), pad))
            progress.method_record[task.name] = {**self.method.describe(optimizer), **replayed}
            model = self.method.after_task(model, optimizer, ctx)
            del optimizer, scheduler
            if self.parallel is not None:
                self.parallel.verify_weights(model, f"after {task.name}")
            with timings.part("evaluation"):
                stage = evaluate_stage(model, tokenizer, self.stream, config, self.device, self.folder, index + 1,
                                       self.dist, evaluator)
            progress.scores.append(stage.scores)
            progress.loglik_scores.append(stage.loglik)
            measured = index == last or config.measure_every_task  # the probe and stability
            if self.probe is not None:
                with timings.part("probe"):
                    progress.retention.append(self.probe.measure(model).to_dict() if measured else None)
            with timings.part("metrics"):
                if measured and stability is not None:
                    stability.measure(f"after {task.name}", _weights(self.method.target_weights(model)),
                                      base=base_weights)
                progress.stability = stability.to_dict() if stability is not None else None
                progress.overlap = overlap.to_dict() if layout else None
            self.events.after_task(index + 1, progress.scores[-1], overlap if layout else None)
            if index == last or self.saver.every_task:  # by default only the final stage is kept
                initial_adapter = getattr(self.method, "initial_adapter", None)
                with timings.part("checkpoint"):
                    self.saver.save(model, tokenizer, index + 1, task.name,
                                    initial_adapter() if initial_adapter else None)
        self.events.close()
        return self._finish(progress, overlap if progress.overlap else None, stability, total_parameters)

    def _probe(self, base_model: nn.Module, tokenizer: Any) -> GeneralProbe:
        """The general probe's reference, taken from the freshly loaded base model."""
        return base_probe(base_model, tokenizer, self.config, self.device)

    def _record_subnets(self, overlap, task: str, layout: dict, subnets: dict | None) -> None:
        if not subnets:
            return
        overlap.record(task, subnets, shapes={n: layout[n][0] for n in subnets},
                       layers={n: layout[n][1] for n in subnets})

    def _train_task(self, index, task, model, tokenizer, optimizer, scheduler, batches, start, pad, overlap, layout,
                    progress: Progress, timings: Timings) -> None:
        config = self.config
        features = self._train_features(tokenizer, task, replay=True)
        make_batch = self._batch_maker(features, pad)
        losses = progress.losses.setdefault(task.name, [])
        progress.updating_steps.setdefault(task.name, 0)
        progress.lr_mass.setdefault(task.name, 0.0)
        model.train()
        bar = progress_bar(total=len(batches), initial=start, enabled=config.progress and self.dist.is_main,
                           leave=False, desc=f"{self.method_name} {index + 1}/{len(self.stream)} {task.name}",
                           unit="step")
        try:
            for step in range(start, len(batches)):
                lr = applied_lr(optimizer)  # before the step, which may re-localize and move the schedule
                with timings.part("train"):
                    self.extras.add_penalty(model)  # into the gradients the step's micro-batches add to
                    if self.parallel is not None:
                        step_loss = self.parallel.train_step(model, optimizer, scheduler, batches[step], features,
                                                             make_batch, max_grad_norm=config.max_grad_norm)
                    else:
                        step_loss = train_step(model, optimizer, scheduler, (make_batch(m) for m in batches[step]),
                                               loss_divisor=len(batches[step]), max_grad_norm=config.max_grad_norm)
                if layout:
                    with timings.part("metrics"):
                        self._record_subnets(overlap, task.name, layout, self.method.new_subnets(optimizer))
                losses.append(step_loss)
                self.events.train_step(index, step, step_loss, lr)
                progress.lr_mass[task.name] += lr
                progress.updating_steps[task.name] += lr > 0
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.3f}")
                done = step + 1
                if done == len(batches):
                    progress.peak_memory_bytes = max(progress.peak_memory_bytes,
                                                     self.dist.max_int(peak_memory_bytes(self.device)))
                if config.checkpoint_every and (done == len(batches) or done % config.checkpoint_every == 0):
                    with timings.part("checkpoint"):
                        progress.overlap = overlap.to_dict() if layout else None
                        self._checkpoint(index, done, model, optimizer, scheduler, progress)
        finally:
            bar.close()

    def _retention_summary(self, points: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """The probe's record in results.json; a stage it was not measured at (see ``measure_every_task``) is null."""
        if not points or self.probe is None:
            return None
        probe = self.probe
        return {
            "probe": "general",
            "items": len(probe.items),
            "base_right": probe.base_right,
            "continuation": "reference answer, teacher-forced",
            "kl": [p["kl"] if p else None for p in points],
            "kept": [p["kept"] if p else None for p in points],
            "right": [p["right"] if p else None for p in points],
        }

    def _finish(self, progress: Progress, overlap, stability, total_parameters: int) -> dict[str, Any]:
        from losia_cl.metrics import cl_metrics

        tasks = self.stream.task_names
        cont = self.continuation
        continued = None if cont is None else {"run": str(cont.run_dir), "tasks": cont.num_earlier}
        loglik = progress.loglik_scores if cont is None or cont.carries_loglik(self.method_name, self.base_loglik) else None
        progress.peak_memory_bytes = max(progress.peak_memory_bytes, self.dist.max_int(peak_memory_bytes(self.device)))
        results = MethodResults(
            method=self.method_name,
            method_options=self.method.options(),
            tasks=tasks,
            task_metrics={t.name: t.metric for t in self.stream},
            scores=progress.scores,
            metrics=cl_metrics(progress.scores).to_dict(),
            subnet_overlap=overlap.summary() if overlap is not None else None,
            stability=stability.summary() if cont is None and stability is not None else None,
            trainable_parameters=progress.trainable_parameters,
            total_parameters=total_parameters,
            train_seconds=progress.timings.get("train", 0.0),
            eval_seconds=progress.timings.get("evaluation", 0.0) + progress.timings.get("probe", 0.0),
            timings={part: progress.timings.get(part, 0.0) for part in TIME_PARTS},
            peak_memory_bytes=progress.peak_memory_bytes,
            seed=self.config.seed,
            steps=progress.steps,
            updating_steps=progress.updating_steps,
            lr_mass=progress.lr_mass,
            losses=progress.losses,
            method_record=progress.method_record,
            loglik_scores=loglik,
            loglik_metrics=None if loglik is None else cl_metrics(loglik, bounded=False).to_dict(),
            retention=self._retention_summary(progress.retention),
            continued_from=continued,
            saved_models=self.saver.pointers(tasks, 0 if cont is None else cont.num_earlier),
        ).to_json()
        self._sync.close()
        if not self.dist.is_main:
            return results
        out = self.config.out_dir
        atomic_write_text(inside(self.folder, "scores.csv"), _scores_csv(tasks, progress.scores), root=out)
        atomic_write_json(inside(self.folder, "results.json"), results, root=out)
        inside(self.folder, CHECKPOINT_NAME).unlink(missing_ok=True)
        return results
