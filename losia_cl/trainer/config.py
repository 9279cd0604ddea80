"""Configuration of a continual-learning run: one documented, validated dataclass."""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, brief
from losia_cl.fields import documented
from losia_cl.names import check_name, check_unique, name_problem
from losia_cl.streams.own_data import data_file_mapping, default_task_name, is_data_file_path
from losia_cl.streams.types import Stream
from losia_cl.trainer.plan import BatchPlan

#: Replay's defaults (here, not from trainer.replay, so that the CLI's help loads without torch).
DEFAULT_SHARE = 0.25
DEFAULT_PER_TASK = 100

_PLAN_HELP = {f.name: f.metadata["help"] for f in fields(BatchPlan)}
_PLAN_DEFAULT = {f.name: f.default for f in fields(BatchPlan)}


#: Allowed range of every integer field (bounds keep a typo from asking for years of work or all memory).
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),
    "epochs": (1, 1000),
    "max_steps": (1, 1_000_000),
    "batch_size": (1, 65_536),
    "grad_accum": (1, 65_536),
    "max_length": (3, 1_048_576),
    "max_train_examples": (1, 2**40),
    "max_test_examples": (1, 2**40),
    "eval_batch_size": (1, 65_536),
    "checkpoint_every": (0, 1_000_000),
    "replay_buffer": (1, 1_000_000),
}
#: Integer fields that may be None (no cap).
OPTIONAL = ("max_steps", "max_train_examples", "max_test_examples", "replay_buffer")
#: The largest learning rate accepted (every method is Adam-based; beyond 1 training only diverges).
MAX_LR = 1.0
#: The largest gradient-clipping norm accepted.
MAX_GRAD_NORM = 1e6
#: Micro-batches one task may ask for (epochs × examples / batch size).
MAX_MICRO_BATCHES = 1_000_000
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")


def _number_in(value: object, low: float, high: float) -> bool:
    """``value`` is an int or float (not a bool), finite, and in [low, high]."""
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and low <= value <= high)


def _check_lr(value: object, what: str) -> None:
    """A learning rate from any source (``lr``, ``method_options``, a tune file) must lie in (0, MAX_LR]."""
    if not _number_in(value, 0.0, MAX_LR) or value == 0:
        raise ConfigError(f"{what}={brief(value)} is invalid: it must be a number > 0 and <= {MAX_LR:g} "
                          "(a learning rate)")


def stream_label(stream: str | Stream) -> str:
    """The stream's name in run-directory names: a Stream's name, a file's stem, or the stream name."""
    if isinstance(stream, Stream):
        return stream.name
    if is_data_file_path(stream):
        return default_task_name(Path(stream))
    return Path(stream).stem if stream.lower().endswith(".toml") else stream


@dataclass
class RunConfig:
    """What ``losia-cl run`` does; every field has one line of help (the CLI's) in its metadata."""

    stream: str | Stream = documented(
        "Stream name (demo, trace, cl-benchmark), path to a TOML manifest or a data file, or (Python) a Stream "
        "object.", "demo")
    data_dir: str | None = documented("Data folder of on-disk streams such as TRACE (else $LOSIA_CL_DATA).", None)
    tasks: tuple[str, ...] | None = documented("Subset and order of the stream's tasks (default: all).", None)
    prompt_template: str | None = documented(
        "A single data file's prompt: a format string over its fields, e.g. 'Review: {text}\\nSentiment:' "
        "(default: the field 'prompt').", None)
    answer_field: str | None = documented("A single data file's answer field (default: 'answer').", None)
    labels: tuple[str, ...] | None = documented(
        "Names of a single data file's integer labels: answer 0 becomes the first.", None)
    methods: tuple[str, ...] = documented(
        "Methods to compare, run one after the other (names are case-insensitive: each method once; METHOD+replay: "
        "the method with experience replay, see --replay).",
        ("losia", "lora", "full"))
    model: str = documented("smollm2-135m (embedded), tiny-llama, a Hugging Face id or a local path.", "smollm2-135m")
    out: str | None = documented("Run directory (default runs/<stream>-<model>-seed<seed>).", None)
    seed: int = documented("Seed of data order, initialisation and subnets.", 0)
    shuffle: bool = documented(_PLAN_HELP["shuffle"], _PLAN_DEFAULT["shuffle"])
    epochs: int = documented(_PLAN_HELP["epochs"], _PLAN_DEFAULT["epochs"])
    max_steps: int | None = documented(_PLAN_HELP["max_steps"], _PLAN_DEFAULT["max_steps"])
    batch_size: int = documented(_PLAN_HELP["batch_size"], _PLAN_DEFAULT["batch_size"])
    grad_accum: int = documented(_PLAN_HELP["grad_accum"], _PLAN_DEFAULT["grad_accum"])
    max_grad_norm: float | None = documented("Gradient-norm clipping (None/0: off).", 1.0)
    max_length: int = documented("Token budget of prompt + answer (the prompt's start is cut first).", 256)
    max_train_examples: int | None = documented("Training examples per task (default: all).", None)
    max_test_examples: int | None = documented("Test examples per task (default: all).", None)
    eval_batch_size: int = documented("Prompts per generation batch.", 32)
    checkpoint_every: int = documented(
        "Checkpoint every N steps inside a task and at every task's end, for --resume (0: no checkpoints; a "
        "resumed run then restarts its unfinished method from its first task).", 0)
    lr: dict[str, float] = documented("Learning rate per method, overriding its default.", None)
    lr_from: str | None = documented(
        "tune.json written by losia-cl tune: its chosen learning rates (--lr still wins per method).", None)
    method_options: dict[str, dict[str, Any]] = documented(
        "Options per method, {method: {option: value}} (`losia-cl methods --options` lists them).", None
    )
    replay: float | None = documented(
        "Experience replay of the methods named METHOD+replay (e.g. losia+replay): the share, in (0, 1), of each "
        f"batch's examples drawn from earlier tasks (default {DEFAULT_SHARE:g}); the task's own examples and "
        "steps stay as without replay.", None)
    replay_buffer: int | None = documented(
        "Training examples the replay buffer keeps of every finished task, a seeded sample "
        f"(default {DEFAULT_PER_TASK}).", None)
    chat_template: bool = documented("Wrap prompts in the tokenizer's chat template.", False)
    retention: bool = documented("Measure drift from the base model on the general probe (after the last task).", True)
    stability: bool = documented(
        "Measure weight stability: the spectra of every target matrix against the base model's (results.json "
        "'stability', the report's stability section), after the last task (after every task with "
        "measure_every_task).  Off by default: on SmolLM2-135M it takes about 10 s per method and stage.", False)
    measure_every_task: bool = documented(
        "Run the general probe (and the weight-stability analysis, with stability) after every task, not only "
        "after the last (the score matrices are always complete).", False)
    dtype: str = documented("Weight dtype: float32 or bfloat16.", "float32")
    device: str = documented("cpu, cuda, cuda:N or auto.", "auto")
    dist_backend: str = documented(
        "Process-group backend under torchrun: auto (NCCL on CUDA, gloo on CPU), gloo, nccl or mpi.", "auto"
    )
    resume: bool = documented("Continue an interrupted run in --out from its last checkpoint.", False)
    progress: bool = documented("Show progress bars (on a terminal only; TQDM_DISABLE=1 hides them too).", True)
    report: bool = documented("Write the HTML report at the end.", True)
    tensorboard: bool = documented(
        "Write TensorBoard event files to <out>/tensorboard/<method>/: loss and applied learning rate per step, "
        "scores after every task, subnet overlap (needs the tensorboard extra).", False)
    wandb: bool = documented(
        "Log the same scalars to one Weights & Biases run per method, offline in <out>/wandb/ unless WANDB_MODE "
        "is set (needs the wandb package).", False)
    save_models: bool = documented(
        "Save each method's trained model after every task in <method>/model/ (replaced by the next task's; "
        "docs/saved-models.md).", True)
    save_every_task: bool = documented(
        "Keep every task's model, in <method>/models/<i>-<task>/, instead of the latest one only.", False)
    from_run: str | None = documented(
        "Continue the stream of this finished run folder: every method starts from its saved model, trains the "
        "tasks of this run and is scored on the earlier tasks too (docs/saved-models.md).", None)

    def __post_init__(self) -> None:
        if not isinstance(self.lr or {}, dict):
            raise ConfigError(f"lr = {self.lr!r:.60} is invalid: it must be a table of METHOD = NUMBER")
        if not isinstance(self.method_options or {}, dict) or not all(
                isinstance(v, dict) for v in (self.method_options or {}).values()):
            raise ConfigError(f"method_options = {self.method_options!r:.60} is invalid: it must be a table of "
                              "tables, {METHOD: {OPTION: VALUE}}")
        self.lr = dict(self.lr or {})
        self.method_options = {k: dict(v) for k, v in (self.method_options or {}).items()}
        if isinstance(self.methods, str):
            self.methods = tuple(m.strip() for m in self.methods.split(",") if m.strip())
        self.methods = tuple(self.methods)
        if isinstance(self.tasks, str):
            self.tasks = tuple(t.strip() for t in self.tasks.split(",") if t.strip())
        if isinstance(self.labels, str):
            self.labels = tuple(t.strip() for t in self.labels.split(",") if t.strip())
        elif isinstance(self.labels, list):
            self.labels = tuple(self.labels)
        self.validate()

    def validate(self) -> None:
        from losia_cl.methods import METHODS
        from losia_cl.methods.spec import parse_method_spec

        if not isinstance(self.stream, (str, Stream)) or not str(getattr(self.stream, "name", self.stream)).strip():
            raise ConfigError(f"stream = {self.stream!r:.60} is invalid: give a stream name, a path or a Stream")
        data_file_mapping(self.stream, self.prompt_template, self.answer_field, self.labels)
        if not self.methods:
            raise ConfigError("methods: give at least one method")
        for name in self.methods:
            METHODS.get(parse_method_spec(name).method)  # UnknownNameError lists the known methods
            check_name("method", name)
        replaying = [name for name in self.methods if parse_method_spec(name).replay]
        if self.replay is not None and (not _number_in(self.replay, 0.0, 1.0) or self.replay in (0, 1)):
            raise ConfigError(f"replay = {self.replay!r} is invalid: it must be a number between 0 and 1 "
                              "(the share of each batch's examples replayed)")
        if (self.replay is not None or self.replay_buffer is not None) and not replaying:
            raise ConfigError(f"{'replay' if self.replay is not None else 'replay_buffer'}: no method replays; name "
                              "the methods that should as METHOD+replay (e.g. --methods losia,losia+replay)")
        check_unique("method", self.methods, where="methods")  # twice, or FULL beside full (the same method)
        for key, given in (("lr", self.lr), ("method_options", self.method_options)):
            for name in given:
                if name not in self.methods:
                    raise ConfigError(f"{key}: {name!r} is not one of the methods run ({', '.join(self.methods)})")
        for key, (low, high) in INT_RANGES.items():
            value = getattr(self, key)
            if value is None and key in OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{key} = {value!r} is invalid: it must be an integer from {low} to {high:,}"
                                  + (" (or None)" if key in OPTIONAL else ""))
        self.batch_plan  # noqa: B018  (validates shuffle, and the plan's own rules)
        if self.max_grad_norm is not None and not _number_in(self.max_grad_norm, 0.0, MAX_GRAD_NORM):
            raise ConfigError(f"max_grad_norm = {self.max_grad_norm!r} is invalid: it must be a number from 0 to "
                              f"{MAX_GRAD_NORM:g} (0 or None: no clipping)")
        for name, value in self.lr.items():
            _check_lr(value, f"lr: {name}")
        for name, options in self.method_options.items():
            if "lr" in options:
                _check_lr(options["lr"], f"method_options: {name}.lr")
        for key in ("chat_template", "resume", "progress", "report", "retention", "stability", "measure_every_task",
                    "save_models", "save_every_task", "tensorboard", "wandb"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} = {getattr(self, key)!r} is invalid: it must be true or false")
        if self.tensorboard:
            from losia_cl.trainer.tensorboard_log import tensorboard_problem

            problem = tensorboard_problem()
            if problem is not None:
                raise ConfigError(f"tensorboard = true {problem}")
        if self.wandb:
            from losia_cl.trainer.wandb_log import wandb_problem

            problem = wandb_problem()
            if problem is not None:
                raise ConfigError(f"wandb = true {problem}")
        if self.lr_from is not None:
            from losia_cl.learning_rates import check_tune_matches, read_tune_file

            stream = stream_label(self.stream) if isinstance(self.stream, Stream) else self.stream
            tuned = read_tune_file(self.lr_from)
            check_tune_matches(tuned, self.lr_from, stream=stream, model=self.model)
            for name, value in tuned["chosen"].items():
                if name in self.methods:
                    _check_lr(value, f"--lr-from {self.lr_from}: chosen {name}")
        from losia_cl.distributed.context import BACKENDS

        if self.dist_backend not in BACKENDS:
            raise ConfigError(f"dist_backend = {self.dist_backend!r} is invalid: it must be one of {', '.join(BACKENDS)}")
        if self.save_every_task and not self.save_models:
            raise ConfigError("save_every_task = true and save_models = false contradict each other: keep every "
                              "task's model or none (drop --save-every-task or --no-save)")
        if self.from_run is not None and (not isinstance(self.from_run, (str, os.PathLike))
                                          or not str(self.from_run).strip() or "\x00" in str(self.from_run)):
            raise ConfigError(f"from_run = {self.from_run!r:.60} is invalid: it must be the path of a run folder")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype = {self.dtype!r} is invalid: it must be float32 or bfloat16")
        if self.out is not None and (not isinstance(self.out, (str, os.PathLike)) or "\x00" in str(self.out)):
            raise ConfigError(f"out = {self.out!r} is invalid: it must be a folder path without NUL characters")
        if not isinstance(self.device, str) or not DEVICE.fullmatch(self.device):
            raise ConfigError(f"device = {self.device!r} is invalid: it must be auto, cpu, cuda or cuda:N")
        for name in self.methods:
            # unknown options and bad values, before any model loads
            self.create_method(name)

    def create_method(self, name: str) -> Any:
        """A fresh instance of the method ``name`` of ``methods`` with its options (``X+replay``: method X)."""
        from losia_cl.methods import create_method
        from losia_cl.methods.spec import parse_method_spec

        return create_method(parse_method_spec(name).method, **self.options_for(name))

    def options_for(self, method: str) -> dict[str, Any]:
        """The options ``method`` is created with: its ``method_options``, and its learning rate from ``lr``,
        else from ``lr_from`` (see :meth:`learning_rates`)."""
        options = dict(self.method_options.get(method, {}))
        if method in self.lr:
            options["lr"] = self.lr[method]
        elif self.lr_from is not None and "lr" not in options:
            rate = self.learning_rates()[method]
            if rate.source != "default":
                options["lr"] = rate.lr
        return options

    @property
    def replay_share(self) -> float:
        """The share of replayed examples of the methods that replay."""
        return DEFAULT_SHARE if self.replay is None else float(self.replay)

    @property
    def replay_per_task(self) -> int:
        """The examples the replay buffer keeps of every finished task."""
        return DEFAULT_PER_TASK if self.replay_buffer is None else self.replay_buffer

    @property
    def batch_plan(self) -> BatchPlan:
        """The per-task training budget and data order of this run."""
        return BatchPlan(epochs=self.epochs, batch_size=self.batch_size, grad_accum=self.grad_accum,
                         max_steps=self.max_steps, shuffle=self.shuffle, seed=self.seed)

    def steps_per_task(self, stream: Stream) -> list[int]:
        """The optimizer steps of every task of ``stream`` under this run's batch plan."""
        return [self.batch_plan.num_steps(len(task.train)) for task in stream]

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        stream = stream_label(self.stream)
        model = Path(self.model).name or "model"
        name = f"{stream}-{model}-seed{self.seed}"
        if name_problem(name) is not None:
            raise ConfigError(f"out: no safe default run folder name from stream {stream!r} and model "
                              f"{self.model!r} ({name!r} {name_problem(name)}); give --out")
        return Path("runs") / name

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "stream"}
        out = {"stream": stream_label(self.stream) if isinstance(self.stream, Stream) else self.stream, **out}
        out["methods"] = list(self.methods)
        out["tasks"] = list(self.tasks) if self.tasks else None
        out["labels"] = list(self.labels) if self.labels else None
        out["out"] = str(self.out_dir)
        return out

    def learning_rates(self):
        """Every method's learning rate and its source (``--lr``, ``tune.json`` or ``default``)."""
        from losia_cl.learning_rates import resolve_learning_rates

        explicit = {m: o["lr"] for m, o in self.method_options.items() if "lr" in o}
        return resolve_learning_rates(self.methods, {**explicit, **self.lr}, self.lr_from)

    @staticmethod
    def field_help() -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in fields(RunConfig)}
