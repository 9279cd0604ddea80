"""Read and validate finished (or partly finished) run directories.

The trainer writes, for every run::

    OUT/run.json                   # format "losia_cl.run/1": stream, tasks, methods, seed, versions...
    OUT/<method>/results.json      # format "losia_cl.results/1": scores, metrics, costs, overlap, stability
    OUT/<method>/scores.csv
    OUT/<method>/predictions/stage<i>-<task>.jsonl

:func:`load_run` reads ``run.json`` and every ``results.json`` it finds and
checks them; anything missing or malformed raises
:class:`~losia_cl.errors.DataError` naming the file and the key.  A method
listed in ``run.json`` whose directory has no ``results.json`` is *unfinished*:
it is reported in :attr:`RunData.missing`, not an error, as long as at least
one method finished.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from losia_cl.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["RUN_FORMAT", "RESULTS_FORMAT", "MethodResult", "RunData", "load_run", "load_runs"]

RUN_FORMAT = "losia_cl.run/1"
RESULTS_FORMAT = "losia_cl.results/1"

#: metric keys of ``results.json["metrics"]`` (``cl_metrics(...).to_dict()``) the report uses.
METRIC_KEYS = ("average_performance", "bwt", "fwt", "forgetting", "learning_accuracy")
_CURVE_KEYS = ("average_performance_curve", "bwt_curve", "forgetting_curve")
#: tolerance when checking the stored metrics against the ones recomputed from the scores.
_METRIC_TOLERANCE = 1e-6


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
    losses: dict[str, list[float]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    loglik_scores: np.ndarray | None = None
    loglik_metrics: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None

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


# ---- small typed readers: every failure names the file and the key


def _where(path: Path, key: str) -> str:
    return f"{path}: key {key!r}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _get(data: Mapping[str, Any], key: str, path: Path, *, required: bool = True) -> Any:
    if key not in data:
        if required:
            raise DataError(f"{path}: required key {key!r} is missing")
        return None
    return data[key]


def _as_str(value: Any, path: Path, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise DataError(f"{_where(path, key)} must be a non-empty string, got {value!r}")
    return value


def _as_int(value: Any, path: Path, key: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise DataError(f"{_where(path, key)} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise DataError(f"{_where(path, key)} must be >= {minimum}, got {value!r}")
    return int(value)


def _as_float(value: Any, path: Path, key: str, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{_where(path, key)} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise DataError(f"{_where(path, key)} must be >= {minimum}, got {value!r}")
    return float(value)


def _as_str_list(value: Any, path: Path, key: str, *, nonempty: bool = True) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DataError(f"{_where(path, key)} must be a list of non-empty strings, got {value!r}")
    if nonempty and not value:
        raise DataError(f"{_where(path, key)} must not be empty")
    if len(set(value)) != len(value):
        dup = sorted({v for v in value if value.count(v) > 1})
        raise DataError(f"{_where(path, key)} repeats {dup}")
    return tuple(value)


def _as_dict(value: Any, path: Path, key: str, *, nullable: bool = False) -> dict[str, Any] | None:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        kind = "an object or null" if nullable else "an object"
        raise DataError(f"{_where(path, key)} must be {kind}, got {type(value).__name__}")
    return value


def _as_optional_number(value: Any, path: Path, key: str) -> float | None:
    if value is None:
        return None
    return _as_float(value, path, key, minimum=None)


# ---- run.json


def _read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise DataError(
            f"{run_dir}: not a finished run directory: run.json is missing "
            "(expected the output folder of `losia-cl run`)"
        )
    info = _read_json(path)
    fmt = _get(info, "format", path)
    if fmt != RUN_FORMAT:
        raise DataError(f"{_where(path, 'format')} is {fmt!r}, expected {RUN_FORMAT!r}")
    _as_str(_get(info, "stream", path), path, "stream")
    _as_str(_get(info, "model", path), path, "model")
    tasks = _as_str_list(_get(info, "tasks", path), path, "tasks")
    _as_str_list(_get(info, "methods", path), path, "methods", nonempty=False)
    _as_int(_get(info, "seed", path), path, "seed", minimum=None)
    tm = _as_dict(_get(info, "task_metrics", path, required=False) or {}, path, "task_metrics")
    unknown = sorted(set(tm) - set(tasks))
    if unknown:
        raise DataError(f"{_where(path, 'task_metrics')} names tasks not in 'tasks': {unknown}")
    for key in ("versions", "config"):
        _as_dict(_get(info, key, path, required=False), path, key, nullable=True)
    for key in ("git_commit", "started_at", "finished_at"):
        value = info.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{_where(path, key)} must be a string or null, got {value!r}")
    command = info.get("command")
    if command is not None and not (isinstance(command, list) and all(isinstance(c, str) for c in command)):
        raise DataError(f"{_where(path, 'command')} must be a list of strings, got {command!r}")
    return info


# ---- results.json


def _validate_scores(value: Any, path: Path, tasks: Sequence[str]) -> np.ndarray:
    t = len(tasks)
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise DataError(f"{_where(path, 'scores')} must be a list of {t + 1} rows (base + one per task)")
    if len(value) != t + 1:
        raise DataError(
            f"{_where(path, 'scores')} has {len(value)} rows, expected {t + 1} "
            f"(row 0 = base model, then one row after each of the {t} tasks)"
        )
    for i, row in enumerate(value):
        if len(row) != t:
            raise DataError(f"{_where(path, f'scores[{i}]')} has {len(row)} values, expected {t} (one per task)")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DataError(f"{_where(path, f'scores[{i}][{j}]')} must be a finite number, got {v!r}")
            if not 0.0 <= v <= 1.0:
                raise DataError(f"{_where(path, f'scores[{i}][{j}]')} = {v!r} is outside [0, 1]")
    return np.asarray(value, dtype=np.float64)


def _validate_metrics(value: Any, path: Path, scores: np.ndarray) -> dict[str, Any]:
    from losia_cl.metrics import cl_metrics

    metrics = _as_dict(value, path, "metrics")
    assert metrics is not None
    expected = cl_metrics(scores).to_dict()
    t = scores.shape[1]
    for key in METRIC_KEYS:
        if key not in metrics:
            raise DataError(f"{path}: required key 'metrics.{key}' is missing")
        got, want = metrics[key], expected[key]
        if want is None:
            if got is not None:
                raise DataError(f"{_where(path, f'metrics.{key}')} must be null with {t} task(s), got {got!r}")
            continue
        got_f = _as_float(got, path, f"metrics.{key}", minimum=None)
        if abs(got_f - want) > _METRIC_TOLERANCE:
            raise DataError(
                f"{_where(path, f'metrics.{key}')} = {got_f!r} does not match the value {want!r} "
                "recomputed from 'scores' (the file is inconsistent)"
            )
    for key in _CURVE_KEYS:
        curve = metrics.get(key)
        if curve is None:
            metrics[key] = expected[key]
            continue
        if not isinstance(curve, list) or len(curve) != t:
            raise DataError(f"{_where(path, f'metrics.{key}')} must be a list of {t} values (one per stage)")
        for i, v in enumerate(curve):
            if v is not None:
                _as_float(v, path, f"metrics.{key}[{i}]", minimum=None)
    return metrics


def _validate_overlap(value: Any, path: Path, tasks: Sequence[str]) -> dict[str, Any] | None:
    summary = _as_dict(value, path, "subnet_overlap", nullable=True)
    if summary is None:
        return None
    n = len(_as_str_list(_get(summary, "tasks", path), path, "subnet_overlap.tasks", nonempty=False))
    for key in ("coverage_jaccard", "coverage_jaccard_chance", "coverage_jaccard_ratio"):
        m = summary.get(key)
        if key == "coverage_jaccard" and m is None:
            raise DataError(f"{path}: required key 'subnet_overlap.{key}' is missing")
        if m is None:
            continue
        if not isinstance(m, list) or len(m) != n or not all(isinstance(r, list) and len(r) == n for r in m):
            raise DataError(f"{_where(path, f'subnet_overlap.{key}')} must be a {n} x {n} list of lists")
        for a, row in enumerate(m):
            for b, v in enumerate(row):
                if v is not None:
                    _as_float(v, path, f"subnet_overlap.{key}[{a}][{b}]", minimum=None)
    for key in ("task_coverage", "cumulative_coverage", "cumulative_coverage_entries"):
        c = summary.get(key)
        if c is None:
            continue
        if not isinstance(c, list) or len(c) != n:
            raise DataError(f"{_where(path, f'subnet_overlap.{key}')} must be a list of {n} values (one per task)")
        for i, v in enumerate(c):
            if v is not None:
                _as_float(v, path, f"subnet_overlap.{key}[{i}]")
    per_layer = summary.get("per_layer")
    if per_layer is not None:
        _as_dict(per_layer, path, "subnet_overlap.per_layer")
        for layer, entry in per_layer.items():
            try:
                int(layer)
            except ValueError:
                raise DataError(f"{_where(path, 'subnet_overlap.per_layer')}: layer key {layer!r} is not an integer") from None
            _as_dict(entry, path, f"subnet_overlap.per_layer.{layer}")
    extra = [t for t in summary["tasks"] if t not in tasks]
    if extra:
        raise DataError(f"{_where(path, 'subnet_overlap.tasks')} names tasks not in 'tasks': {extra}")
    return summary


def _validate_stability(summary: Any, path: Any) -> dict[str, Any] | None:
    """Check the parts of a stability summary the report reads; DataError names the file and key."""
    if summary is None:
        return None
    if not isinstance(summary, dict):
        raise DataError(f"{path}: key 'stability' must be an object or null, got {type(summary).__name__}")
    stages = summary.get("stages")
    if not isinstance(stages, list):
        raise DataError(f"{path}: key 'stability.stages' must be a list (one entry per measured stage)")
    for i, stage in enumerate(stages):
        where = f"stability.stages[{i}]"
        if not isinstance(stage, dict):
            raise DataError(f"{path}: key {where!r} must be an object")
        if not isinstance(stage.get("stage"), str):
            raise DataError(f"{path}: key '{where}.stage' must be a string")
        for key in ("mean", "per_layer"):
            value = stage.get(key, {} if key == "per_layer" else None)
            if not isinstance(value, dict):
                raise DataError(f"{path}: key '{where}.{key}' must be an object")
        for layer, row in stage.get("per_layer", {}).items():
            try:
                int(layer)
            except ValueError:
                raise DataError(f"{path}: key '{where}.per_layer' has a non-integer layer {layer!r}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: key '{where}.per_layer.{layer}' must be an object")
        for row_where, row in [(f"{where}.mean", stage["mean"])] + [
            (f"{where}.per_layer.{k}", r) for k, r in stage.get("per_layer", {}).items()
        ]:
            for key, value in row.items():
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or not math.isfinite(value)):
                    raise DataError(f"{path}: key '{row_where}.{key}' must be a finite number or null, got {value!r}")
    return summary


def _read_results(path: Path, method: str, run_tasks: Sequence[str]) -> MethodResult:
    data = _read_json(path)
    fmt = _get(data, "format", path)
    if fmt != RESULTS_FORMAT:
        raise DataError(f"{_where(path, 'format')} is {fmt!r}, expected {RESULTS_FORMAT!r}")
    name = _as_str(_get(data, "method", path), path, "method")
    if name != method:
        raise DataError(f"{_where(path, 'method')} is {name!r} but the file lies in the directory of {method!r}")
    tasks = _as_str_list(_get(data, "tasks", path), path, "tasks")
    if list(tasks) != list(run_tasks):
        raise DataError(f"{_where(path, 'tasks')} is {list(tasks)}, but run.json lists {list(run_tasks)}")
    tm = _as_dict(_get(data, "task_metrics", path, required=False) or {}, path, "task_metrics")
    scores = _validate_scores(_get(data, "scores", path), path, tasks)
    metrics = _validate_metrics(_get(data, "metrics", path), path, scores)
    overlap = _validate_overlap(_get(data, "subnet_overlap", path, required=False), path, tasks)
    stability = _validate_stability(_get(data, "stability", path, required=False), path)
    trainable = _as_int(_get(data, "trainable_parameters", path), path, "trainable_parameters")
    total = _as_int(_get(data, "total_parameters", path), path, "total_parameters")
    if trainable > total:
        raise DataError(f"{_where(path, 'trainable_parameters')} = {trainable} exceeds total_parameters = {total}")
    train_s = _as_float(_get(data, "train_seconds", path), path, "train_seconds")
    eval_raw = _get(data, "eval_seconds", path, required=False)
    eval_s = None if eval_raw is None else _as_float(eval_raw, path, "eval_seconds")
    peak = _as_int(_get(data, "peak_memory_bytes", path), path, "peak_memory_bytes")
    seed_raw = _get(data, "seed", path, required=False)
    seed = None if seed_raw is None else _as_int(seed_raw, path, "seed", minimum=None)
    steps_raw = _as_dict(_get(data, "steps", path, required=False) or {}, path, "steps")
    steps = {str(k): _as_int(v, path, f"steps.{k}") for k, v in steps_raw.items()}
    losses_raw = _as_dict(_get(data, "losses", path, required=False) or {}, path, "losses")
    losses: dict[str, list[float]] = {}
    for k, values in losses_raw.items():
        if not isinstance(values, list):
            raise DataError(f"{_where(path, f'losses.{k}')} must be a list of numbers")
        losses[str(k)] = [
            float("nan") if v is None else _as_float(v, path, f"losses.{k}[{i}]", minimum=None)
            for i, v in enumerate(values)
        ]
    options = _as_dict(_get(data, "method_options", path, required=False) or {}, path, "method_options")
    loglik, loglik_metrics = _validate_loglik(data, path, tasks)
    retention = _validate_retention(data.get("retention"), path, len(tasks))
    return MethodResult(
        method=name,
        path=path,
        tasks=tasks,
        task_metrics={str(k): str(v) for k, v in tm.items()},
        scores=scores,
        metrics=metrics,
        subnet_overlap=overlap,
        stability=stability,
        trainable_parameters=trainable,
        total_parameters=total,
        train_seconds=train_s,
        eval_seconds=eval_s,
        peak_memory_bytes=peak,
        seed=seed,
        steps=steps,
        losses=losses,
        options=options or {},
        loglik_scores=loglik,
        loglik_metrics=loglik_metrics,
        retention=retention,
    )


def _validate_loglik(data: Mapping[str, Any], path: Path, tasks: Sequence[str]) -> tuple[Any, Any]:
    """The optional graded matrix ``loglik_scores`` ((T+1) × T, finite) and its metrics, recomputed."""
    value = data.get("loglik_scores")
    if value is None:
        return None, None
    from losia_cl.metrics import cl_metrics

    t = len(tasks)
    if not isinstance(value, list) or len(value) != t + 1 or not all(isinstance(r, list) and len(r) == t
                                                                      for r in value):
        raise DataError(f"{_where(path, 'loglik_scores')} must be {t + 1} rows of {t} values (like 'scores')")
    for i, row in enumerate(value):
        for j, v in enumerate(row):
            _as_float(v, path, f"loglik_scores[{i}][{j}]", minimum=None)
    matrix = np.asarray(value, dtype=np.float64)
    return matrix, cl_metrics(matrix, bounded=False).to_dict()


def _validate_retention(value: Any, path: Path, num_tasks: int) -> dict[str, Any] | None:
    """The optional general-probe record: ``kl`` (≥ 0), ``kept`` (0-1 or null) and ``right``, one per stage."""
    record = _as_dict(value, path, "retention", nullable=True)
    if record is None:
        return None
    for key in ("kl", "kept"):
        series = _get(record, key, path)
        if not isinstance(series, list) or len(series) != num_tasks + 1:
            raise DataError(f"{_where(path, f'retention.{key}')} must be a list of {num_tasks + 1} values "
                            "(base, then one per task)")
        for i, v in enumerate(series):
            if v is not None or key == "kl":
                number = _as_float(v, path, f"retention.{key}[{i}]", minimum=None)
                if key == "kept" and not 0.0 <= number <= 1.0:
                    raise DataError(f"{_where(path, f'retention.kept[{i}]')} = {number!r} is outside [0, 1]")
    return record


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
