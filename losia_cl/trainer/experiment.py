"""A whole run: load the stream, score the base model once (and take the probe's reference from it), run every
method, write run.json."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from losia_cl.distributed.context import DistContext
from losia_cl.errors import ConfigError, DataError
from losia_cl.results import RunInfo, read_results
from losia_cl.streams import Stream, load_stream, stream_options
from losia_cl.streams.own_data import data_file_mapping
from losia_cl.streams.selection import select_tasks
from losia_cl.trainer.config import MAX_MICRO_BATCHES, RunConfig
from losia_cl.trainer.files import atomic_write_json, inside, remove_stale_temp_files
from losia_cl.trainer.run_folder import RUN_FILE, RunLock, check_out_folder
from losia_cl.trainer.checkpoint import Checkpoint
from losia_cl.trainer.continuation import Continuation, read_continuation
from losia_cl.trainer.sequential import (
    Progress, SequentialTrainer, StageScores, base_probe, base_stability, evaluate_stage,
)
from losia_cl.timing import Timings

logger = logging.getLogger(__name__)

BASE_SCORES = "base_scores.json"


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` asks for; :class:`ConfigError` if this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device = {name!r} is invalid: no CUDA device is available on this machine "
                              "(torch.cuda.is_available() is False); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device = {name!r} is invalid: this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def load_run_stream(config: RunConfig) -> Stream:
    """The stream with the run's task subset and example limits applied (validated before any model loads)."""
    if isinstance(config.stream, Stream):
        return _restrict(config.stream, config)
    options: dict[str, Any] = {}
    accepted = set(stream_options(config.stream))
    for key in ("data_dir", "tasks", "max_train_examples", "max_test_examples"):
        value = getattr(config, key)
        if value is not None and key in accepted:
            options[key] = list(value) if key == "tasks" else value
    if "seed" in accepted:
        options["seed"] = config.seed
    options.update(data_file_mapping(config.stream, config.prompt_template, config.answer_field, config.labels))
    stream = load_stream(config.stream, **options)
    return _restrict(stream, config, done=accepted)


def _restrict(stream: Stream, config: RunConfig, done: set[str] = frozenset()) -> Stream:
    """Apply the task subset and the example limits the stream's loader did not take (the first examples)."""
    tasks = stream.tasks
    if config.tasks and "tasks" not in done:
        tasks = tuple(stream.task(name) for name in select_tasks(stream.task_names, config.tasks, kind="task"))
    limits = {split: getattr(config, f"max_{split}_examples") for split in ("train", "test")
              if f"max_{split}_examples" not in done}
    if "test" in limits:
        limits["eval"] = limits["test"]  # eval splits are capped like test
    tasks = tuple(replace(task, **{split: task.split(split)[:limit] for split, limit in limits.items()})
                  for task in tasks)
    return Stream(name=stream.name, tasks=tasks, description=stream.description)


#: RunConfig fields that may differ between a run and its resumption
_RESUMABLE_CHANGES = ("resume", "progress", "report", "out", "device", "checkpoint_every", "eval_batch_size",
                      "dist_backend", "tensorboard", "wandb")


def _check_same_run(stored: dict[str, Any], current: dict[str, Any], run_file: Path) -> None:
    """--resume must continue the same experiment: every result-changing field must match run.json's (a field
    that run.json lacks, written before the field existed, matches the field's default)."""
    from dataclasses import fields as dataclass_fields

    defaults = {f.name: f.default for f in dataclass_fields(RunConfig)}
    differing = sorted(
        key for key in set(stored) | set(current)
        if key not in _RESUMABLE_CHANGES and stored.get(key) != current.get(key)
        and not (key not in stored and key in defaults and current.get(key) == defaults[key])
    )
    if differing:
        details = "; ".join(f"{k}: {stored.get(k)!r} in the run, {current.get(k)!r} now" for k in differing)
        raise ConfigError(f"--resume: {run_file} was started with other settings ({details})")


def _check_same_rates(stored: RunInfo, config: RunConfig, run_file: Path) -> None:
    """--resume must train with the learning rates run.json records (a tune file may have changed since)."""
    if not stored.learning_rates:  # written by a version that did not record them
        return
    now = config.learning_rates()
    for method, rate in now.items():
        recorded = stored.learning_rates.get(method, {}).get("lr")
        if recorded is not None and recorded != rate.lr:
            where = f" (from {rate.file})" if rate.file else f" ({rate.source})"
            raise ConfigError(f"--resume: {run_file} records the learning rate {recorded:g} for {method}, this "
                              f"run would use {rate.lr:g}{where}; restore the file or start a new run")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("losia-cl", "torch", "transformers", "peft", "datasets", "numpy", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def check_budget(config: RunConfig, stream: Stream) -> None:
    """Refuse a task whose training would ask for more than :data:`MAX_MICRO_BATCHES` micro-batches."""
    for task in stream:
        micro = config.epochs * math.ceil(len(task.train) / config.batch_size)
        if micro > MAX_MICRO_BATCHES:
            raise ConfigError(
                f"epochs = {config.epochs}: task {task.name!r} would take {micro:,} micro-batches "
                f"({len(task.train):,} examples / batch size {config.batch_size} × {config.epochs} epochs), more "
                f"than the limit {MAX_MICRO_BATCHES:,}; lower --epochs or --max-train-examples"
            )


def _cached_base_scores(out: Path, stream: Stream) -> StageScores | None:
    """Row 0 of the score matrices if an earlier start of this run computed it for these tasks (the graded row
    empty when that start did not record it)."""
    path = out / BASE_SCORES
    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        logger.warning("%s is unreadable; the base model is scored again", path)
        return None
    if not isinstance(cached, dict) or cached.get("tasks") != stream.task_names:
        return None
    scores, loglik = cached.get("scores"), cached.get("loglik")
    if not isinstance(scores, list) or len(scores) != len(stream) or not all(isinstance(v, float) for v in scores):
        return None
    if not isinstance(loglik, list) or len(loglik) != len(stream) or not all(isinstance(v, float) for v in loglik):
        loglik = []
    return StageScores(scores, loglik)


def _check_checkpoints(config: RunConfig, stream: Stream) -> None:
    """A resumption refuses an unusable checkpoint before it writes anything (each trainer checks its own again)."""
    steps = config.steps_per_task(stream)
    for name in config.methods:
        folder = inside(config.out_dir, name)
        if (folder / "results.json").exists():
            continue
        checkpoint = Checkpoint.load(folder, mmap=True)  # the tensors are not read, only mapped
        if checkpoint is not None:
            checkpoint.progress_as(Progress, folder, steps)


def check_run_folder(config: RunConfig, world_size: int) -> RunInfo | None:
    """The stored run.json when resuming (None for a new run), after checking the folder may be used.

    ``--out`` must be new, empty or a losia-cl run folder (:func:`check_out_folder`); ``--resume``
    refuses other result-changing settings, other learning rates (a ``--lr-from`` file edited since)
    and another number of processes.  Nothing is written.
    """
    stored = check_out_folder(config.out_dir, resume=config.resume)
    if stored is None:
        return None
    run_file = config.out_dir / RUN_FILE
    _check_same_run(stored.config or {}, config.to_dict(), run_file)
    _check_same_rates(stored, config, run_file)
    if stored.world_size != world_size:
        raise ConfigError(f"--resume: {run_file} was trained by {stored.world_size} process(es), this job has "
                          f"{world_size}; resume with --nproc {stored.world_size}")
    return stored


@dataclass
class RunOutcome:
    out_dir: Path
    results: dict[str, dict[str, Any]]
    rank: int = 0  #: this process's rank (only rank 0 writes files and prints)
    timings: dict[str, float] | None = None  #: the base model's share, done once (``run.json["timings"]``)


def run_experiment(config: RunConfig, command: list[str] | None = None,
                   before_first_write: Callable[[], None] | None = None) -> RunOutcome:
    """Run every method of ``config`` on its stream; results under ``config.out_dir``.

    Everything is validated before the first byte is written (the config and every method's options,
    the stream and its data, the run folder, the device, the model, which loads here unless an
    earlier start already scored it), so a refused run leaves no trace and its corrected retry just works.
    ``before_first_write`` runs (in the process that writes) once all that passed, right before it.
    A resumption that finds every method finished writes nothing.
    Under ``torchrun`` (several processes) the run is data-parallel: see docs/distributed.md.
    """
    from losia_cl.distributed.context import distributed_context

    stream = load_run_stream(config)
    check_budget(config, stream)
    continuation = read_continuation(config, stream, load_run_stream) if config.from_run else None
    resolve_device(config.device)  # a device this machine lacks is refused before anything starts
    with distributed_context(config.dist_backend, config.device) as (dist, device):
        return _run(config, stream, command, dist, device, before_first_write, continuation)


def _run(config: RunConfig, new_stream: Stream, command: list[str] | None, dist: DistContext,
         device: torch.device, before_first_write: Callable[[], None] | None,
         continuation: Continuation | None = None) -> RunOutcome:
    """``new_stream``: the tasks to train; with ``continuation`` (``--from``) the run's stream is the earlier run's
    tasks followed by them (the base model is scored on the new tasks only)."""
    from losia_cl.models import load_model

    out = config.out_dir
    stream = continuation.joined(new_stream) if continuation is not None else new_stream
    stored = dist.decide(lambda: check_run_folder(config, dist.world_size))
    dtype = getattr(torch, config.dtype)
    rates = config.learning_rates()
    run_info = RunInfo(
        stream=stream.name, tasks=stream.task_names, model=config.model, methods=list(config.methods),
        seed=config.seed, task_metrics={t.name: t.metric for t in stream}, config=config.to_dict(),
        command=command or [], versions=_versions(), git_commit=_git_commit(),
        started_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), world_size=dist.world_size,
        learning_rates={m: rate.to_dict() for m, rate in rates.items()},
    )
    if stored is not None:
        run_info.started_at = stored.started_at or run_info.started_at
        dist.decide(lambda: _check_checkpoints(config, stream))
        run_info.timings = stored.timings

    def loader():
        torch.manual_seed(config.seed)
        return load_model(config.model, dtype=dtype, device=device, seed=config.seed)

    def load_path(path: str):
        torch.manual_seed(config.seed)
        return load_model(path, dtype=dtype, device=device, seed=config.seed)

    def method_loader(name: str):
        return loader if continuation is None else continuation.loader(name, loader, load_path)

    base = dist.decide(lambda: _cached_base_scores(out, new_stream) if stored is not None else None)
    timings = Timings()
    with timings.part("load"):
        base_model = loader() if base is None else None  # a model that cannot load stops the run here
    lock = RunLock(out)

    def start() -> None:  # rank 0: hold the folder, then write the first byte
        lock.acquire()
        try:
            check_out_folder(out, resume=config.resume)  # again: another process may have started a run meanwhile
            if before_first_write is not None:
                before_first_write()
            remove_stale_temp_files(out)
            if stored is None:  # a resumption keeps the run.json it checked until it has something to add
                atomic_write_json(inside(out, RUN_FILE), run_info.to_json(), root=out)
        except BaseException:
            lock.release()
            raise

    dist.decide(start)
    if dist.is_main:  # once the run holds its folder: a refused run says one line only
        logger.info("learning rates: %s", ", ".join(f"{m} {r.lr:g} ({r.source})" for m, r in rates.items()))
        untuned = [m for m, r in rates.items() if r.source == "default"]
        if config.lr_from and untuned:
            logger.warning("%s: no tuned learning rate for %s; using the default", config.lr_from, ", ".join(untuned))
    try:
        probe = stability = None
        if base is None:
            with timings.part("base_evaluation"):
                base = _base_scores(config, new_stream, base_model, device, dist)
            if config.retention:
                with timings.part("probe_reference"):
                    probe = base_probe(base_model[0], base_model[1], config, device)
            if config.stability:
                with timings.part("stability_reference"):
                    first = config.create_method(config.methods[0])
                    stability = base_stability(first.target_weights(base_model[0]))
            base_model = None
            run_info.timings = dict(timings.seconds)
        results: dict[str, dict[str, Any]] = {}
        trained = stored is None or not stored.finished_at
        for name in config.methods:
            done = inside(out, name, "results.json")
            finished = dist.decide(lambda: read_results(done).to_json() if config.resume and done.exists() else None)
            if finished is not None:
                logger.info("%s: already finished, kept", name)
                results[name] = finished
                continue
            scores, loglik = base.scores, base.loglik or None
            if continuation is not None:  # the earlier tasks' row 0 is the earlier run's
                scores, loglik = continuation.base_rows(scores, loglik)
            trainer = SequentialTrainer(config, stream, name, method_loader(name), device, scores, dist,
                                        base_loglik=loglik, probe=probe, stability_base=stability,
                                        continuation=continuation)
            results[name] = trainer.run()
            trained = True
            # taken from the first method's fresh model when this start had none
            probe, stability = trainer.probe, trainer.stability_base
        run_info.finished_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if dist.is_main and trained:
            atomic_write_json(inside(out, RUN_FILE), run_info.to_json(), root=out)
    finally:
        if dist.is_main:
            lock.release()
    return RunOutcome(out, results, dist.rank, run_info.timings)


def _base_scores(config: RunConfig, stream: Stream, base_model: tuple[Any, Any], device: torch.device,
                 dist: DistContext) -> StageScores:
    """Row 0 of every method's score matrices, computed once per run and cached in the run directory."""
    model, tokenizer = base_model
    stage = evaluate_stage(model, tokenizer, stream, config, device, inside(config.out_dir, "base"), 0, dist)
    if dist.is_main:
        atomic_write_json(inside(config.out_dir, BASE_SCORES),
                          {"tasks": stream.task_names, "scores": stage.scores, "loglik": stage.loglik},
                          root=config.out_dir)
    return stage
