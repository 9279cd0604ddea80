"""Read and validate finished (or partly finished) run directories.

The trainer writes, for every run::

    OUT/run.json                   # losia_cl.results.RunInfo: stream, tasks, methods, seed, versions...
    OUT/<method>/results.json      # losia_cl.results.MethodResults: scores, metrics, costs, overlap, stability
    OUT/<method>/scores.csv
    OUT/<method>/predictions/stage<i>-<task>.jsonl

:func:`load_run` reads ``run.json`` and every ``results.json`` it finds and
checks them (through :mod:`losia_cl.results`, docs/results-format.md); anything missing or malformed raises
:class:`~losia_cl.errors.DataError` naming the file and the key.  A method
listed in ``run.json`` whose directory has no ``results.json`` is *unfinished*:
it is reported in :attr:`RunData.missing`, not an error, as long as at least
one method finished.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from losia_cl.errors import DataError, brief
from losia_cl.results import METRIC_KEYS, RESULTS_FORMAT, RUN_FORMAT, RunInfo, read_json, read_results

logger = logging.getLogger(__name__)

__all__ = ["RUN_FORMAT", "RESULTS_FORMAT", "MethodResult", "RunData", "load_run", "load_runs"]


@dataclass(frozen=True)
class MethodResult:
    """One method's validated ``results.json``.

    ``scores`` is the ``(T+1) × T`` score matrix (row 0 = base model); the
    other fields mirror the file (``None`` where the file has ``null`` or
    leaves an optional key out).
    """

    method: str
    path: Path
    tasks: tuple[str, ...]
    task_metrics: dict[str, str]
    scores: np.ndarray
    metrics: dict[str, Any]
    subnet_overlap: dict[str, Any] | None
    stability: dict[str, Any] | None
    trainable_parameters: int
    total_parameters: int
    train_seconds: float
    eval_seconds: float | None
    peak_memory_bytes: int
    seed: int | None
    steps: dict[str, int] = field(default_factory=dict)
    updating_steps: dict[str, int] = field(default_factory=dict)
    lr_mass: dict[str, float] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    loglik_scores: np.ndarray | None = None
    loglik_metrics: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None
    method_record: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] | None = None

    def metric(self, key: str) -> float | None:
        """A headline value by column key: a CL metric, ``loglik_<metric>`` (the same metric on the graded
        ``loglik_scores``), ``retention_kl`` / ``retention_kept`` (the general probe after the last task),
        or a cost field of the file."""
        if key in METRIC_KEYS:
            value = self.metrics.get(key)
        elif key.startswith("loglik_") and key[len("loglik_"):] in METRIC_KEYS:
            value = (self.loglik_metrics or {}).get(key[len("loglik_"):])
        elif key in ("retention_kl", "retention_kept"):
            series = (self.retention or {}).get(key[len("retention_"):]) or [None]
            value = series[-1]
        else:
            value = getattr(self, key)
        return None if value is None else float(value)


@dataclass(frozen=True)
class RunData:
    """A validated run directory: ``run.json`` plus the finished methods' results.

    Attributes:
        path: the run directory.
        info: ``run.json`` as read (after validation).
        results: finished methods in the order of ``run.json["methods"]`` (then
            any other method directory holding a ``results.json``, by name).
        missing: methods listed in ``run.json`` without a ``results.json``.
    """

    path: Path
    info: dict[str, Any]
    results: dict[str, MethodResult]
    missing: tuple[str, ...]

    @property
    def stream(self) -> str:
        return str(self.info["stream"])

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.info["tasks"])

    @property
    def task_metrics(self) -> dict[str, str]:
        return dict(self.info.get("task_metrics") or {})

    @property
    def model(self) -> str:
        return str(self.info["model"])

    @property
    def seed(self) -> int:
        return int(self.info["seed"])

    @property
    def methods(self) -> tuple[str, ...]:
        """Methods listed in ``run.json``."""
        return tuple(self.info["methods"])

    @property
    def finished(self) -> bool:
        """Whether the trainer recorded ``finished_at`` (the run ran to its end)."""
        return self.info.get("finished_at") is not None


# ---- the files, read through the results schema (losia_cl.results)


def _read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise DataError(
            f"{run_dir}: not a finished run directory: run.json is missing "
            "(expected the output folder of `losia-cl run`)"
        )
    return RunInfo.from_json(read_json(path), path).to_json()


def _read_results(path: Path, method: str, run_tasks: Sequence[str]) -> MethodResult:
    data = read_results(path)
    if data.method != method:
        raise DataError(
            f"{path}: key 'method' is {brief(data.method)} but the file lies in the directory of {method!r}")
    if list(data.tasks) != list(run_tasks):
        raise DataError(
            f"{path}: key 'tasks' is {brief(list(data.tasks))}, but run.json lists {brief(list(run_tasks))}")
    return MethodResult(
        method=data.method,
        path=path,
        tasks=tuple(data.tasks),
        task_metrics=dict(data.task_metrics),
        scores=np.asarray(data.scores, dtype=np.float64),
        metrics=data.metrics,
        subnet_overlap=data.subnet_overlap,
        stability=data.stability,
        trainable_parameters=data.trainable_parameters,
        total_parameters=data.total_parameters,
        train_seconds=data.train_seconds,
        eval_seconds=data.eval_seconds,
        peak_memory_bytes=data.peak_memory_bytes,
        seed=data.seed,
        steps=dict(data.steps),
        updating_steps=dict(data.updating_steps),
        lr_mass=dict(data.lr_mass),
        losses={t: [float("nan") if v is None else v for v in values] for t, values in data.losses.items()},
        options=dict(data.method_options),
        loglik_scores=None if data.loglik_scores is None else np.asarray(data.loglik_scores, dtype=np.float64),
        loglik_metrics=data.loglik_metrics,
        retention=data.retention,
        method_record=dict(data.method_record),
        timings=None if data.timings is None else dict(data.timings),
    )


def load_run(run_dir: str | Path) -> RunData:
    """Read and validate one run directory (see the module docstring).

    Raises :class:`~losia_cl.errors.DataError` when the directory or its
    ``run.json`` is missing, when no method finished (no ``results.json``), or
    when a file is malformed (the message names the file and the key).
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise DataError(f"{run_dir}: run directory does not exist")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a directory (expected the output folder of `losia-cl run`)")
    info = _read_run_json(run_dir)
    tasks = info["tasks"]
    declared = list(info["methods"])
    results: dict[str, MethodResult] = {}
    missing: list[str] = []
    for method in declared:
        path = run_dir / method / "results.json"
        if path.is_file():
            results[method] = _read_results(path, method, tasks)
        else:
            missing.append(method)
    for child in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name not in declared):
        path = child / "results.json"
        if path.is_file():
            logger.warning("%s: method %r is not listed in run.json 'methods'; reporting it anyway", run_dir, child.name)
            results[child.name] = _read_results(path, child.name, tasks)
    if not results:
        wanted = ", ".join(f"{m}/results.json" for m in declared) or "<method>/results.json"
        raise DataError(
            f"{run_dir}: no finished method: none of {wanted} exists "
            "(the run has not finished any method yet)"
        )
    if missing:
        logger.info("%s: unfinished methods (no results.json): %s", run_dir, ", ".join(missing))
    return RunData(path=run_dir, info=info, results=results, missing=tuple(missing))


def expand_run_dirs(run_dirs: Sequence[str | Path]) -> list[str | Path]:
    """Each directory, or the per-seed run folders its ``seeds.json`` lists (``losia-cl run --seeds``)."""
    from losia_cl.multiseed import seed_run_dirs

    out: list[str | Path] = []
    for d in run_dirs:
        seeds = [] if (Path(d) / "run.json").is_file() else seed_run_dirs(d)
        out.extend(seeds or [d])
    return out


def load_runs(run_dirs: Sequence[str | Path]) -> list[RunData]:
    """:func:`load_run` for each directory (a ``seeds.json`` folder: each seed's); at least one, none twice."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    run_dirs = expand_run_dirs(run_dirs)
    if not run_dirs:
        raise DataError("no run directory given")
    seen: dict[Path, str] = {}
    for d in run_dirs:
        key = Path(d).resolve()
        if key in seen:
            raise DataError(f"{d}: run directory given twice (also as {seen[key]})")
        seen[key] = str(d)
    return [load_run(d) for d in run_dirs]
