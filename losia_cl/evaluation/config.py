"""What ``losia-cl eval`` does: one documented, validated dataclass (the CLI's options come from its fields).

The check is pure: it reads no file and loads no model (the stream, the output folder and the model
are checked by :func:`~losia_cl.evaluation.run.run_eval` before anything is written).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError
from losia_cl.fields import documented
from losia_cl.names import name_problem
from losia_cl.streams.own_data import data_file_mapping
from losia_cl.streams.types import Stream
from losia_cl.trainer.config import DEVICE, INT_RANGES, RunConfig, stream_label

_RUN_HELP = RunConfig.field_help()


@dataclass
class EvalConfig:
    """What ``losia-cl eval`` does; every field has one line of help (the CLI's) in its metadata.

    The stream options mean what they mean for ``losia-cl run``, so that ``eval`` of a run's ``--model``
    with its stream, ``--tasks``, ``--limit`` (= ``--max-test-examples``), ``--batch-size``
    (= ``--eval-batch-size``), ``--max-length``, ``--chat-template``, ``--dtype`` and ``--seed`` scores
    exactly the run's base row (``base_scores.json``).
    """

    model: str = documented(
        "The model to score: smollm2-135m (embedded), tiny-llama, a Hugging Face id, a save_pretrained folder, "
        "or a PEFT adapter folder (with --base-model unless its adapter_config.json names its base).",
        "smollm2-135m")
    base_model: str | None = documented(
        "The base model: that of a PEFT adapter folder, and the general probe's reference (with it, the probe "
        "also reports the KL drift from it and the share of its right answers kept).", None)
    stream: str | Stream = documented(_RUN_HELP["stream"], "demo")
    data_dir: str | None = documented(_RUN_HELP["data_dir"], None)
    tasks: tuple[str, ...] | None = documented(_RUN_HELP["tasks"], None)
    prompt_template: str | None = documented(_RUN_HELP["prompt_template"], None)
    answer_field: str | None = documented(_RUN_HELP["answer_field"], None)
    labels: tuple[str, ...] | None = documented(_RUN_HELP["labels"], None)
    limit: int | None = documented("Test examples per task (default: all); run's --max-test-examples.", None)
    batch_size: int = documented("Prompts per generation batch (and sequences per log-likelihood batch); "
                                 "run's --eval-batch-size.", 32)
    max_length: int = documented(_RUN_HELP["max_length"], 256)
    chat_template: bool = documented(_RUN_HELP["chat_template"], False)
    dtype: str = documented(_RUN_HELP["dtype"], "float32")
    device: str = documented(_RUN_HELP["device"], "auto")
    seed: int = documented("Seed of the stream's examples and of randomly initialised models (tiny-llama).", 0)
    output_path: str | None = documented(
        "Output folder: eval.json, and predictions/ with --log-samples (default evals/<stream>-<model>-seed<seed>). "
        "It must be new, empty or an earlier eval's folder.", None)
    log_samples: bool = documented(
        "Also write every test prompt, prediction, reference and score: OUTPUT/predictions/<task>.jsonl.", False)
    probe: bool = documented("Score the general probe (122 short prompts): how many the model answers right.", True)
    progress: bool = documented(_RUN_HELP["progress"], True)

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = tuple(t.strip() for t in self.tasks.split(",") if t.strip())
        if isinstance(self.labels, str):
            self.labels = tuple(t.strip() for t in self.labels.split(",") if t.strip())
        elif isinstance(self.labels, list):
            self.labels = tuple(self.labels)
        self.validate()

    def validate(self) -> None:
        for key in ("model", "base_model"):
            value = getattr(self, key)
            if (value is not None or key == "model") and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{key} = {value!r:.60} is invalid: give a model name, id or folder")
        if not isinstance(self.stream, (str, Stream)) or not str(getattr(self.stream, "name", self.stream)).strip():
            raise ConfigError(f"stream = {self.stream!r:.60} is invalid: give a stream name, a path or a Stream")
        data_file_mapping(self.stream, self.prompt_template, self.answer_field, self.labels)
        for key, range_key in (("limit", "max_test_examples"), ("batch_size", "eval_batch_size"),
                               ("max_length", "max_length"), ("seed", "seed")):
            value = getattr(self, key)
            if value is None and key == "limit":
                continue
            low, high = INT_RANGES[range_key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{key} = {value!r} is invalid: it must be an integer from {low} to {high:,}"
                                  + (" (or None: all)" if key == "limit" else ""))
        for key in ("chat_template", "log_samples", "probe", "progress"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} = {getattr(self, key)!r} is invalid: it must be true or false")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype = {self.dtype!r} is invalid: it must be float32 or bfloat16")
        if not isinstance(self.device, str) or not DEVICE.fullmatch(self.device):
            raise ConfigError(f"device = {self.device!r} is invalid: it must be auto, cpu, cuda or cuda:N")
        if self.output_path is not None and (not isinstance(self.output_path, (str, os.PathLike))
                                             or not str(self.output_path) or "\x00" in str(self.output_path)):
            raise ConfigError(f"output_path = {self.output_path!r} is invalid: it must be a folder path without "
                              "NUL characters")
        self.output_dir  # noqa: B018  (a default folder name must be safe)

    # What losia_cl.trainer.experiment.load_run_stream reads, so that eval and run select the same examples.
    @property
    def max_test_examples(self) -> int | None:
        return self.limit

    @property
    def max_train_examples(self) -> None:
        return None

    @property
    def output_dir(self) -> Path:
        if self.output_path:
            return Path(self.output_path)
        model = Path(self.model.rstrip("/\\")).name or "model"
        name = f"{stream_label(self.stream)}-{model}-seed{self.seed}"
        if name_problem(name) is not None:
            raise ConfigError(f"output_path: no safe default folder name from stream {stream_label(self.stream)!r} "
                              f"and model {self.model!r} ({name!r} {name_problem(name)}); give --output-path")
        return Path("evals") / name

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["stream"] = stream_label(self.stream) if isinstance(self.stream, Stream) else self.stream
        out["tasks"] = list(self.tasks) if self.tasks else None
        out["labels"] = list(self.labels) if self.labels else None
        out["output_path"] = str(self.output_dir)
        return out

    @staticmethod
    def field_help() -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in fields(EvalConfig)}
