"""The files a run writes, as typed records: ``run.json`` (:class:`RunInfo`) and ``<method>/results.json``
(:class:`MethodResults`).

The trainer writes them with :meth:`to_json`; the report, ``compare`` and ``--resume`` read them
with :func:`read_run_info` / :func:`read_results`, which validate every field and name the file
and the field at fault (:class:`~losia_cl.errors.DataError`).  Keys a reader does not know are
ignored, so files written by a newer version stay readable.  Importing this module does not
import torch.

``docs/results-format.md`` documents every field from the ``metadata["help"]`` below (a test
keeps the two in step; ``python -m losia_cl.results`` prints the tables).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from losia_cl.errors import DataError, brief
from losia_cl.fields import documented
from losia_cl.files import open_regular

__all__ = ["RESULTS_FORMAT", "RUN_FORMAT", "METRIC_KEYS", "MethodResults", "RunInfo", "read_json", "read_results",
           "read_run_info", "schema_markdown"]

#: ``format`` of ``run.json``.
RUN_FORMAT = "losia_cl.run/1"
#: ``format`` of ``<method>/results.json``.
RESULTS_FORMAT = "losia_cl.results/1"

#: Headline keys of ``results.json["metrics"]`` (``cl_metrics(scores).to_dict()``), checked against the scores.
METRIC_KEYS = ("average_performance", "bwt", "fwt", "forgetting", "learning_accuracy")
_CURVE_KEYS = ("average_performance_curve", "bwt_curve", "forgetting_curve")
#: Tolerance when checking the stored metrics against the ones recomputed from the scores.
_METRIC_TOLERANCE = 1e-6
#: Largest magnitude of an integer field (counts and sizes are int64).
MAX_INT = 2**63 - 1
#: Deepest nesting of the free-form ``method_options`` (the report prints them).
_MAX_DEPTH = 64


# ---------------------------------------------------------------- small typed readers (name the file and the key)
def _where(path: Path, key: str) -> str:
    return f"{path}: key {key!r}"


def _is_number(value: Any) -> bool:
    """A JSON number that is a finite float (integers too large for a float are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or malformed file raises :class:`DataError` naming it.

    Damaged files (not UTF-8, empty, truncated, nested deeper than the JSON reader goes, integer literals
    longer than Python converts) are malformed too; so is anything but a regular file (a FIFO would block).
    """
    try:
        with open_regular(path) as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); "
                        "the file is damaged or not a results file") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty (was writing it interrupted?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: not readable JSON: arrays or objects are nested too deeply") from None
    except ValueError as exc:  # an integer literal longer than Python converts
        reason = str(exc).splitlines()[0].split("; use sys.")[0]
        raise DataError(f"{path}: not readable JSON: {reason}") from None
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
        raise DataError(f"{_where(path, key)} must be a non-empty string, got {brief(value)}")
    return value


def _as_int(value: Any, path: Path, key: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, float) and _is_number(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{_where(path, key)} must be an integer, got {brief(value)}")
    if abs(value) > MAX_INT:
        raise DataError(f"{_where(path, key)} = {brief(value)} is out of range (at most 2**63 - 1 in magnitude)")
    if minimum is not None and value < minimum:
        raise DataError(f"{_where(path, key)} must be >= {minimum}, got {value!r}")
    return value


def _as_float(value: Any, path: Path, key: str, *, minimum: float | None = 0.0) -> float:
    if not _is_number(value):
        raise DataError(f"{_where(path, key)} must be a finite number, got {brief(value)}")
    if minimum is not None and value < minimum:
        raise DataError(f"{_where(path, key)} must be >= {minimum}, got {brief(value)}")
    return float(value)


def _as_str_list(value: Any, path: Path, key: str, *, nonempty: bool = True) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DataError(f"{_where(path, key)} must be a list of non-empty strings, got {brief(value)}")
    if nonempty and not value:
        raise DataError(f"{_where(path, key)} must not be empty")
    if len(set(value)) != len(value):
        dup = sorted({v for v in value if value.count(v) > 1})
        raise DataError(f"{_where(path, key)} repeats {brief(dup)}")
    return list(value)


def _as_folder_names(value: Any, path: Path, key: str) -> list[str]:
    """Method names: each is the name of a folder in the run directory (one path component)."""
    names = _as_str_list(value, path, key, nonempty=False)
    for i, name in enumerate(names):
        if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
            raise DataError(f"{_where(path, f'{key}[{i}]')} = {brief(name)} is not a folder name "
                            "(a method's results lie in RUN_DIR/<method>/; no '/', '\\', '.' or '..')")
    return names


def _check_depth(value: Any, path: Path, key: str) -> None:
    """Free-form objects that are printed may nest at most :data:`_MAX_DEPTH` levels."""
    level = [value]
    for _ in range(_MAX_DEPTH):
        level = [v for item in level if isinstance(item, (dict, list))
                 for v in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return
    raise DataError(f"{_where(path, key)} is nested more than {_MAX_DEPTH} levels deep")


def _as_optional_numbers(row: Mapping[str, Any], path: Path, key: str, keys: Sequence[str]) -> None:
    """``row[k]`` is a finite number or null (or absent) for each of ``keys``."""
    for k in keys:
        value = row.get(k)
        if value is not None and not _is_number(value):
            raise DataError(f"{_where(path, f'{key}.{k}')} must be a finite number or null, got {brief(value)}")


def _layer_key(layer: str, path: Path, key: str) -> int:
    """A layer index written as a JSON object key (``"0"``, ``"11"``)."""
    try:
        index = int(layer)
    except ValueError:
        index = None
    if index is None or abs(index) > MAX_INT:
        raise DataError(f"{_where(path, key)} has a layer {brief(layer)} that is not an integer")
    return index


def _as_dict(value: Any, path: Path, key: str, *, nullable: bool = False) -> dict[str, Any] | None:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        kind = "an object or null" if nullable else "an object"
        raise DataError(f"{_where(path, key)} must be {kind}, got {type(value).__name__}")
    return value


def _check_format(data: Mapping[str, Any], path: Path, expected: str) -> None:
    fmt = _get(data, "format", path)
    if fmt != expected:
        raise DataError(f"{_where(path, 'format')} is {brief(fmt)}, expected {expected!r}")


def _optional_str(value: Any, path: Path, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise DataError(f"{_where(path, key)} must be a string or null, got {brief(value)}")
    return value


def _ordered(record: Any) -> dict[str, Any]:
    out = {"format": record.format}
    out.update((f.name, getattr(record, f.name)) for f in fields(record) if f.name != "format")
    return out


# ---------------------------------------------------------------- run.json
@dataclass
class RunInfo:
    """``run.json``: what was run, with which settings and software, and when."""

    stream: str = documented("Name of the task stream.")
    tasks: list[str] = documented("Task names in training order.")
    model: str = documented("The model as given (--model).")
    methods: list[str] = documented("Methods run, in order; each writes the folder `<method>/`.")
    seed: int = documented("Seed of data order, initialisation and subnets.")
    task_metrics: dict[str, str] = documented("{task: name of the scorer that grades it}.", default_factory=dict)
    config: dict[str, Any] | None = documented("The resolved RunConfig (every `losia-cl run` option).", None)
    command: list[str] = documented("The command line.", default_factory=list)
    versions: dict[str, str] | None = documented("Versions of Python, losia-cl, torch, transformers, peft, ...", None)
    git_commit: str | None = documented("Commit of the losia-cl checkout, when run from one.", None)
    started_at: str | None = documented("UTC start time (ISO 8601).", None)
    finished_at: str | None = documented("UTC end time (ISO 8601); null while the run is unfinished.", None)
    world_size: int = documented("Processes the run trained in (data-parallel under torchrun, "
                                 "docs/distributed.md); `--resume` needs as many.", 1)
    learning_rates: dict[str, dict[str, Any]] = documented(
        "{method: {lr, source, file}}: each method's learning rate and where it came from: `default`, `--lr` or "
        "`tune.json` (then `file` names it).", default_factory=dict,
    )
    timings: dict[str, float] | None = documented(
        "{part: wall-clock seconds} of the work done once for all methods: load (the base model), "
        "base_evaluation (row 0 of the score matrices), probe_reference (the general probe on the base model), "
        "stability_reference (the base weights' spectra, with --stability); "
        "null when an earlier start of the run did it.", None,
    )
    format: str = documented(f"File format and version: {RUN_FORMAT!r}.", RUN_FORMAT)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to run.json (``format`` first)."""
        return _ordered(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path) -> RunInfo:
        """Validate ``data`` read from ``path``; :class:`DataError` names the file and the key."""
        _check_format(data, path, RUN_FORMAT)
        stream = _as_str(_get(data, "stream", path), path, "stream")
        model = _as_str(_get(data, "model", path), path, "model")
        tasks = _as_str_list(_get(data, "tasks", path), path, "tasks")
        methods = _as_folder_names(_get(data, "methods", path), path, "methods")
        seed = _as_int(_get(data, "seed", path), path, "seed", minimum=None)
        task_metrics = _as_dict(_get(data, "task_metrics", path, required=False) or {}, path, "task_metrics")
        unknown = sorted(set(task_metrics) - set(tasks))
        if unknown:
            raise DataError(f"{_where(path, 'task_metrics')} names tasks not in 'tasks': {brief(unknown)}")
        config = _as_dict(data.get("config"), path, "config", nullable=True)
        versions = _as_dict(data.get("versions"), path, "versions", nullable=True)
        for name, version in (versions or {}).items():
            if isinstance(version, (dict, list)):
                raise DataError(f"{_where(path, f'versions.{name}')} must be a version string, got {brief(version)}")
        command = data.get("command")
        if command is not None and not (isinstance(command, list) and all(isinstance(c, str) for c in command)):
            raise DataError(f"{_where(path, 'command')} must be a list of strings, got {brief(command)}")
        return cls(
            stream=stream, tasks=tasks, model=model, methods=methods, seed=seed,
            task_metrics={str(k): str(v) for k, v in task_metrics.items()}, config=config, command=command or [],
            versions=versions, git_commit=_optional_str(data.get("git_commit"), path, "git_commit"),
            started_at=_optional_str(data.get("started_at"), path, "started_at"),
            finished_at=_optional_str(data.get("finished_at"), path, "finished_at"),
            world_size=_as_int(data.get("world_size", 1), path, "world_size", minimum=1),
            learning_rates=_validate_learning_rates(data.get("learning_rates"), path),
            timings=_validate_timings(data.get("timings"), path),
        )


def _validate_learning_rates(value: Any, path: Path) -> dict[str, dict[str, Any]]:
    rates = _as_dict(value or {}, path, "learning_rates")
    for method, entry in rates.items():
        entry = _as_dict(entry, path, f"learning_rates.{method}")
        _as_float(_get(entry, "lr", path), path, f"learning_rates.{method}.lr")
        source = entry.get("source")
        if source not in ("default", "--lr", "tune.json"):
            raise DataError(f"{_where(path, f'learning_rates.{method}.source')} must be default, --lr or tune.json, "
                            f"got {source!r}")
    return rates


def _validate_timings(value: Any, path: Path) -> dict[str, float] | None:
    """``{part: seconds}``, each a finite number >= 0 (null: not recorded)."""
    record = _as_dict(value, path, "timings", nullable=True)
    if record is None:
        return None
    return {str(part): _as_float(seconds, path, f"timings.{part}") for part, seconds in record.items()}


def read_run_info(path: Path) -> RunInfo:
    """Read and validate a ``run.json``."""
    return RunInfo.from_json(read_json(path), path)


# ---------------------------------------------------------------- results.json
@dataclass
class MethodResults:
    """``<method>/results.json``: one method's run through the stream."""

    method: str = documented("The method's registered name.")
    tasks: list[str] = documented("Task names in training order (those of run.json).")
    scores: list[list[float | None]] = documented(
        "(T+1) x T scores in [0, 1]: row 0 the base model, row i after training task i, column j task j; null "
        "only where no metric reads (1 <= i < j, 0-based j): a continued stream's earlier stages on its later "
        "tasks (docs/saved-models.md)."
    )
    metrics: dict[str, Any] = documented(
        "cl_metrics(scores).to_dict(): average_performance, bwt, fwt, forgetting, learning_accuracy and their "
        "per-stage curves (docs/metrics.md)."
    )
    trainable_parameters: int = documented("Entries the optimizer updates per step.")
    total_parameters: int = documented("Parameters of the model.")
    train_seconds: float = documented("Wall-clock seconds spent training (all tasks).")
    peak_memory_bytes: int = documented("Peak memory of the method's run: CUDA allocator peak, or peak resident set.")
    method_options: dict[str, Any] = documented("The method's resolved options.", default_factory=dict)
    task_metrics: dict[str, str] = documented("{task: name of the scorer that grades it}.", default_factory=dict)
    subnet_overlap: dict[str, Any] | None = documented(
        "SubnetOverlapTracker.summary() for methods with subnets (LoSiA family), else null.", None
    )
    stability: dict[str, Any] | None = documented(
        "StabilityTracker.summary(): weight stability of the target matrices after the last task (after every task "
        "with --measure-every-task); null without --stability.", None
    )
    eval_seconds: float | None = documented("Wall-clock seconds spent evaluating (all stages).", None)
    seed: int | None = documented("The run's seed.", None)
    steps: dict[str, int] = documented("{task: optimizer steps taken}.", default_factory=dict)
    updating_steps: dict[str, int] = documented(
        "{task: optimizer steps that changed weights}: steps whose applied learning rate is > 0 for some trained "
        "entry (LoSiA's importance-scoring-only steps and steps at lr 0 do not count).", default_factory=dict
    )
    lr_mass: dict[str, float] = documented(
        "{task: learning-rate mass}: the sum over the task's steps of the learning rate applied, a mean over the "
        "updated entries (LoSiA: each matrix's re-warmed rate over its subnet; 0 for a scoring-only step).",
        default_factory=dict,
    )
    losses: dict[str, list[float | None]] = documented(
        "{task: training loss of every optimizer step} (null for a loss that was not finite).", default_factory=dict
    )
    method_record: dict[str, dict[str, Any]] = documented(
        "{task: method.describe(optimizer)}, what the method did during that task ({} for dense methods).",
        default_factory=dict,
    )
    loglik_scores: list[list[float | None]] | None = documented(
        "(T+1) x T graded scores: the mean log-likelihood per answer token (nats, <= 0) of each task's test "
        "references, teacher-forced, after each stage (row 0 the base model); null cells as in scores.", None
    )
    loglik_metrics: dict[str, Any] | None = documented(
        "cl_metrics(loglik_scores, bounded=False).to_dict(): AP, BWT, FWT, forgetting, LA on the graded scores.", None
    )
    retention: dict[str, Any] | None = documented(
        "The general probe at each stage (base first): kl (mean KL(base || model) per reference token), kept "
        "(share of the base model's right answers still right, null if it had none), right (items right now), "
        "items, base_right, continuation; the probe runs on the base model and after the last task (after every "
        "task with --measure-every-task), a stage it skipped is null in kl, kept and right; null under "
        "--no-retention.", None
    )
    timings: dict[str, float] | None = documented(
        "{part: wall-clock seconds} of the method's run: load (the model), train (optimizer steps), evaluation "
        "(greedy generation and graded log-likelihood, one forward pass), probe, metrics (stability, overlap), "
        "checkpoint (writing checkpoints and the saved models); train_seconds = train, eval_seconds = evaluation + probe.", None
    )
    continued_from: dict[str, Any] | None = documented(
        "For a run continuing another (`--from`, docs/saved-models.md): {run: its folder, tasks: how many of the "
        "first tasks it trained}; retention and stability are null then. Null otherwise.", None
    )
    saved_models: dict[str, Any] | None = documented(
        "The trained models kept (docs/saved-models.md), paths relative to the method's folder: `final` (the "
        "model after the last task) and `tasks` ({task: path}, every task's under --save-every-task, else {}); "
        "null under --no-save.", None
    )
    format: str = documented(f"File format and version: {RESULTS_FORMAT!r}.", RESULTS_FORMAT)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to results.json (a non-finite loss becomes null)."""
        out = _ordered(self)
        out["losses"] = {t: [v if v is not None and math.isfinite(v) else None for v in values]
                         for t, values in self.losses.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path) -> MethodResults:
        """Validate ``data`` read from ``path``; :class:`DataError` names the file and the key."""
        _check_format(data, path, RESULTS_FORMAT)
        method = _as_str(_get(data, "method", path), path, "method")
        tasks = _as_str_list(_get(data, "tasks", path), path, "tasks")
        task_metrics = _as_dict(_get(data, "task_metrics", path, required=False) or {}, path, "task_metrics")
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
        updating_raw = _as_dict(_get(data, "updating_steps", path, required=False) or {}, path, "updating_steps")
        updating = {str(k): _as_int(v, path, f"updating_steps.{k}") for k, v in updating_raw.items()}
        for task, n in updating.items():
            if task in steps and n > steps[task]:
                raise DataError(f"{_where(path, f'updating_steps.{task}')} = {n} exceeds steps.{task} = {steps[task]}")
        mass_raw = _as_dict(_get(data, "lr_mass", path, required=False) or {}, path, "lr_mass")
        lr_mass = {str(k): _as_float(v, path, f"lr_mass.{k}") for k, v in mass_raw.items()}
        losses_raw = _as_dict(_get(data, "losses", path, required=False) or {}, path, "losses")
        losses: dict[str, list[float | None]] = {}
        for k, values in losses_raw.items():
            if not isinstance(values, list):
                raise DataError(f"{_where(path, f'losses.{k}')} must be a list of numbers")
            losses[str(k)] = [None if v is None else _as_float(v, path, f"losses.{k}[{i}]", minimum=None)
                              for i, v in enumerate(values)]
        options = _as_dict(_get(data, "method_options", path, required=False) or {}, path, "method_options")
        _check_depth(options, path, "method_options")
        record = _as_dict(_get(data, "method_record", path, required=False) or {}, path, "method_record")
        for task, entry in record.items():
            _as_dict(entry, path, f"method_record.{task}")
        loglik, loglik_metrics = _validate_loglik(data.get("loglik_scores"), path, tasks)
        retention = _validate_retention(data.get("retention"), path, len(tasks))
        saved = _validate_saved_models(data.get("saved_models"), path, tasks)
        continued = _as_dict(data.get("continued_from"), path, "continued_from", nullable=True)
        if continued is not None:
            _as_str(_get(continued, "run", path), path, "continued_from.run")
            earlier = _as_int(_get(continued, "tasks", path), path, "continued_from.tasks", minimum=1)
            if earlier >= len(tasks):
                raise DataError(f"{_where(path, 'continued_from.tasks')} = {earlier} leaves no task of its own "
                                f"among the {len(tasks)}")
        timings = _validate_timings(data.get("timings"), path)
        return cls(
            method=method, tasks=tasks, scores=scores, metrics=metrics, trainable_parameters=trainable,
            total_parameters=total, train_seconds=train_s, peak_memory_bytes=peak, method_options=options,
            task_metrics={str(k): str(v) for k, v in task_metrics.items()}, subnet_overlap=overlap,
            stability=stability, eval_seconds=eval_s, seed=seed, steps=steps, updating_steps=updating,
            lr_mass=lr_mass, losses=losses, method_record=record,
            loglik_scores=loglik, loglik_metrics=loglik_metrics, retention=retention, saved_models=saved,
            continued_from=continued, timings=timings,
        )


def _validate_loglik(value: Any, path: Path, tasks: Sequence[str]) -> tuple[Any, Any]:
    """The optional graded matrix ((T+1) x T, finite) and its metrics, recomputed from it."""
    if value is None:
        return None, None
    from losia_cl.metrics import cl_metrics

    t = len(tasks)
    if not isinstance(value, list) or len(value) != t + 1 or not all(
            isinstance(r, list) and len(r) == t for r in value):
        raise DataError(f"{_where(path, 'loglik_scores')} must be {t + 1} rows of {t} values (like 'scores')")
    matrix = [[None if v is None and 1 <= i < j else _as_float(v, path, f"loglik_scores[{i}][{j}]", minimum=None)
               for j, v in enumerate(row)] for i, row in enumerate(value)]
    return matrix, cl_metrics(matrix, bounded=False).to_dict()


def _validate_retention(value: Any, path: Path, num_tasks: int) -> dict[str, Any] | None:
    """The optional general-probe record: ``kl`` (finite) and ``kept`` (0-1 or null), one per stage (null at a stage
    the probe skipped; the base and the last stage are always measured)."""
    record = _as_dict(value, path, "retention", nullable=True)
    if record is None:
        return None
    for key in ("kl", "kept"):
        series = _get(record, key, path)
        if not isinstance(series, list) or len(series) != num_tasks + 1:
            raise DataError(f"{_where(path, f'retention.{key}')} must be a list of {num_tasks + 1} values "
                            "(base, then one per task)")
        for i, v in enumerate(series):
            if v is None and (key == "kept" or 0 < i < num_tasks):  # kept: undefined; kl: a stage not probed
                continue
            number = _as_float(v, path, f"retention.{key}[{i}]", minimum=None)
            if key == "kept" and not 0.0 <= number <= 1.0:
                raise DataError(f"{_where(path, f'retention.kept[{i}]')} = {number!r} is outside [0, 1]")
    return record


def _relative_folder(value: Any, path: Path, key: str) -> str:
    """A folder path relative to the method's folder that stays inside it (no absolute path, no '..')."""
    text = _as_str(value, path, key)
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "\\")) or ":" in text or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise DataError(f"{_where(path, key)} = {brief(text)} must be a relative folder path inside the method's "
                        "folder (no '..', no absolute path)")
    return text


def _validate_saved_models(value: Any, path: Path, tasks: Sequence[str]) -> dict[str, Any] | None:
    """The optional record of the saved models: ``final`` and ``tasks`` ({task: path}), relative paths."""
    record = _as_dict(value, path, "saved_models", nullable=True)
    if record is None:
        return None
    final = _relative_folder(_get(record, "final", path), path, "saved_models.final")
    per_task = _as_dict(record.get("tasks") or {}, path, "saved_models.tasks")
    unknown = sorted(set(per_task) - set(tasks))
    if unknown:
        raise DataError(f"{_where(path, 'saved_models.tasks')} names tasks not in 'tasks': {brief(unknown)}")
    return {"final": final, "tasks": {t: _relative_folder(p, path, f"saved_models.tasks.{t}")
                                      for t, p in per_task.items()}}


def read_results(path: Path) -> MethodResults:
    """Read and validate a ``results.json``."""
    return MethodResults.from_json(read_json(path), path)


def _validate_scores(value: Any, path: Path, tasks: Sequence[str]) -> list[list[float]]:
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
            if v is None and 1 <= i < j:  # a continued stream's earlier stages never saw the later tasks
                continue
            if not _is_number(v):
                raise DataError(f"{_where(path, f'scores[{i}][{j}]')} must be a finite number, got {brief(v)}"
                                + (" (null only above the diagonal after row 0)" if v is None else ""))
            if not 0.0 <= v <= 1.0:
                raise DataError(f"{_where(path, f'scores[{i}][{j}]')} = {v!r} is outside [0, 1]")
    return [[None if v is None else float(v) for v in row] for row in value]


def _validate_metrics(value: Any, path: Path, scores: list[list[float]]) -> dict[str, Any]:
    from losia_cl.metrics.continual import cl_metrics

    metrics = _as_dict(value, path, "metrics")
    assert metrics is not None
    expected = cl_metrics(scores).to_dict()
    t = len(scores[0])
    for key in METRIC_KEYS:
        if key not in metrics:
            raise DataError(f"{path}: required key 'metrics.{key}' is missing")
        got, want = metrics[key], expected[key]
        if want is None:
            if got is not None:
                raise DataError(f"{_where(path, f'metrics.{key}')} must be null with {t} task(s), got {brief(got)}")
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
        _task_matrix(m, path, f"subnet_overlap.{key}", n)
    for key in ("task_coverage", "cumulative_coverage", "cumulative_coverage_entries"):
        c = summary.get(key)
        if c is not None:
            _task_list(c, path, f"subnet_overlap.{key}", n)
    per_layer = summary.get("per_layer")
    if per_layer is not None:
        _as_dict(per_layer, path, "subnet_overlap.per_layer")
        for layer, entry in per_layer.items():
            _layer_key(layer, path, "subnet_overlap.per_layer")
            _as_dict(entry, path, f"subnet_overlap.per_layer.{layer}")
            _as_optional_numbers(entry, path, f"subnet_overlap.per_layer.{layer}", ("mean_jaccard", "mean_ratio"))
    per_matrix = summary.get("per_matrix")
    if per_matrix is not None:
        _as_dict(per_matrix, path, "subnet_overlap.per_matrix")
        for name, stats in per_matrix.items():
            _validate_matrix_stats(stats, path, f"subnet_overlap.per_matrix.{name}", n)
    extra = [t for t in summary["tasks"] if t not in tasks]
    if extra:
        raise DataError(f"{_where(path, 'subnet_overlap.tasks')} names tasks not in 'tasks': {brief(extra)}")
    return summary


def _validate_matrix_stats(stats: Any, path: Path, where: str, n: int) -> None:
    """The parts of one matrix's overlap statistics the report reads: layer, coverage, chance Jaccard."""
    _as_dict(stats, path, where)
    layer = stats.get("layer")
    if layer is not None:
        _as_int(layer, path, f"{where}.layer", minimum=None)
    coverage = stats.get("coverage")
    if coverage is not None:
        _task_list(coverage, path, f"{where}.coverage", n)
    chance = stats.get("coverage_jaccard_chance")
    if chance is not None:
        _task_matrix(chance, path, f"{where}.coverage_jaccard_chance", n)


def _task_list(value: Any, path: Path, key: str, n: int) -> None:
    """One value per task: ``n`` numbers >= 0 or nulls."""
    if not isinstance(value, list) or len(value) != n:
        raise DataError(f"{_where(path, key)} must be a list of {n} values (one per task)")
    for i, v in enumerate(value):
        if v is not None:
            _as_float(v, path, f"{key}[{i}]")


def _task_matrix(value: Any, path: Path, key: str, n: int) -> None:
    """A task × task matrix: ``n`` lists of ``n`` numbers or nulls."""
    if not isinstance(value, list) or len(value) != n or not all(isinstance(r, list) and len(r) == n for r in value):
        raise DataError(f"{_where(path, key)} must be a {n} x {n} list of lists")
    for a, row in enumerate(value):
        for b, v in enumerate(row):
            if v is not None:
                _as_float(v, path, f"{key}[{a}][{b}]", minimum=None)


def _validate_stability(summary: Any, path: Path) -> dict[str, Any] | None:
    """Check the parts of a stability summary the report reads."""
    if summary is None:
        return None
    if not isinstance(summary, dict):
        raise DataError(f"{path}: key 'stability' must be an object or null, got {type(summary).__name__}")
    config = summary.get("config")
    if config is not None and not isinstance(config, dict):
        raise DataError(f"{path}: key 'stability.config' must be an object, got {type(config).__name__}")
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
            _layer_key(layer, path, f"{where}.per_layer")
            if not isinstance(row, dict):
                raise DataError(f"{path}: key '{where}.per_layer.{layer}' must be an object")
        for row_where, row in [(f"{where}.mean", stage["mean"])] + [
            (f"{where}.per_layer.{k}", r) for k, r in stage.get("per_layer", {}).items()
        ]:
            _as_optional_numbers(row, path, row_where, list(row))
    return summary


# ---------------------------------------------------------------- documentation
def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def schema_markdown() -> str:
    """The field tables of ``docs/results-format.md``, generated from the schema."""
    blocks = []
    for title, cls in (("run.json", RunInfo), ("<method>/results.json", MethodResults)):
        lines = [f"### `{title}`", "", "| key | required | meaning |", "|---|---|---|"]
        for f in fields(cls):
            required = _required(f) or f.name == "format"
            lines.append(f"| `{f.name}` | {'yes' if required else 'no'} | {f.metadata['help']} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


if __name__ == "__main__":  # pragma: no cover - prints the documentation tables
    import sys

    sys.stdout.write(schema_markdown())
