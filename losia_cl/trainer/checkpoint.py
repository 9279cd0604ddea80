"""Checkpoints of a method's progress through the stream: one file of plain data, replaced atomically.

A checkpoint holds tensors, numbers, strings, lists and dicts only: the model, optimizer and
scheduler state dicts, the RNG states (numpy's and Python's converted to integer tensors), the
step counters and the JSON text of the partial results.  It is read with
``torch.load(weights_only=True)``, which builds no Python object other than those, so a
checkpoint file can never run code.  A file in another format (an older losia-cl, another
tool, a truncated or corrupt file), anything but a regular file (a FIFO would block the reader)
and plain data that does not fit the run (unknown or missing entries, values of the wrong type,
a position or score rows outside the run's tasks and steps) are refused with a :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from losia_cl.errors import DataError
from losia_cl.files import open_regular
from losia_cl.plain import from_plain
from losia_cl.trainer.files import DeferredSync, atomic_torch_save, inside

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "losia_cl.checkpoint/2"

_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size)
#: The rows of the partial results that hold one score per task: one row per stage reached.
_SCORE_ROWS = ("scores", "loglik_scores")

T = TypeVar("T")


class CheckpointError(DataError):
    """A checkpoint file cannot be used: another format, or unreadable (truncated, corrupt)."""


def rng_state() -> dict[str, Any]:
    """The RNG states a run consumes (torch CPU/CUDA, numpy, random), as tensors and plain numbers."""
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["key"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _check_plain(value: Any, where: str) -> None:
    """Raise ``TypeError`` naming the entry that ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint entry {where} has a key of type {type(key).__name__}")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"checkpoint entry {where} is a {type(value).__name__}, not plain data")


def _load_error(path: Path, error: BaseException) -> CheckpointError:
    message = str(error)
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        reason = (f"it holds Python objects ({found.group(1)}), not only tensors and plain data "
                  "(an older losia-cl, another tool, or a crafted file)")
    else:
        reason = f"unreadable ({_first_line(error, message.split('WeightsUnpickler error:')[-1])})"
    return _refused(path, reason)


def _first_line(error: BaseException, message: str | None = None) -> str:
    """``Type: first line of the message`` (at most 200 characters of it)."""
    lines = [line.strip() for line in (str(error) if message is None else message).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200] if lines else 'no details'}"


def _refused(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: refused to resume from this checkpoint: {reason}; "
                           "delete it to restart this method from its first task")


def _layout(value: Any) -> Any:
    """The shape of an RNG state: its dicts' keys, its tensors' dtypes and sizes, which values are scalars."""
    if isinstance(value, dict):
        return {key: _layout(item) for key, item in value.items()}
    if isinstance(value, torch.Tensor):
        return (value.dtype, tuple(value.shape))
    scalar = value is None or isinstance(value, (int, float)) and not isinstance(value, bool)
    return "scalar" if scalar else type(value)


def _malformed(data: dict[str, Any]) -> str | None:
    """What in the entries of a loaded checkpoint is not of the kind :meth:`Checkpoint.save` writes."""
    for key in ("task_index", "step"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} must be an integer >= 0, got {value!r:.60}"
    if not isinstance(data.get("model"), dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data["model"].items()):
        return "model must map parameter names to tensors"
    optimizer = data.get("optimizer")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state", {}), dict)
            and isinstance(optimizer.get("param_groups", []), list)
            and all(isinstance(g, dict) for g in optimizer.get("param_groups", []))):
        return "optimizer must be an optimizer state dict (state and param_groups)"
    if data.get("scheduler") is not None and not isinstance(data["scheduler"], dict):
        return "scheduler must be a scheduler state dict or None"
    if not isinstance(data.get("rng"), dict):
        return "rng must hold the random number generators' states"
    if not isinstance(data.get("progress"), str):
        return "progress must be the JSON text of the partial results"
    extras = data.get("extras", {})
    if not isinstance(extras, dict) or not all(
            isinstance(part, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in part.items())
            for part in extras.values()):
        return "extras must map names to tables of tensors"
    return None


@dataclass
class Checkpoint:
    """Where a method stands: inside task ``task_index`` after ``step`` optimizer steps.

    ``model``/``optimizer``/``scheduler`` are state dicts of the task's prepared model and its
    optimizer; ``progress`` holds the JSON-able partial results (score rows, trackers, losses,
    timings); ``extras`` the trainer's other tensors by part (``method``: what a regularizing method
    learned from earlier tasks, ``replay``: the replay buffer), empty when there are none.
    """

    task_index: int
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    rng: dict[str, Any]
    progress: dict[str, Any]
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    def save(self, folder: Path, sync: DeferredSync | None = None, root: Path | None = None) -> Path:
        """Write ``folder/checkpoint.pt`` atomically (with ``sync``: synced and renamed in its background), kept
        inside ``root`` (default ``folder``) when the file is opened."""
        payload = {
            "format": CHECKPOINT_FORMAT, "task_index": int(self.task_index), "step": int(self.step),
            "model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "rng": self.rng,
            "progress": json.dumps(self.progress), "extras": self.extras,
        }
        _check_plain(payload, "checkpoint")
        return atomic_torch_save(inside(folder, CHECKPOINT_NAME), payload, sync, root=folder if root is None else root)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> Checkpoint | None:
        """The checkpoint in ``folder`` (``None`` if there is none); :class:`CheckpointError` if unusable.

        ``mmap``: map the tensors instead of reading them (for a check that does not use them).
        """
        path = inside(folder, CHECKPOINT_NAME)
        if not path.exists():
            return None
        try:
            handle = open_regular(path)  # a FIFO in its place is refused, not waited on
        except (DataError, OSError) as error:
            raise _refused(path, str(error).removeprefix(f"{path}: ")) from None
        try:
            with handle, warnings.catch_warnings():  # e.g. about the pickle protocol of a file we refuse anyway
                warnings.simplefilter("ignore")
                data = torch.load(path if mmap else handle, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as error:  # noqa: BLE001 - every failure to read means the same to the user
            raise _load_error(path, error) from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise _refused(path, f"its format is {found!r:.60}, not {CHECKPOINT_FORMAT!r}")
        unknown = sorted(set(data) - {"format", "task_index", "step", "model", "optimizer", "scheduler", "rng",
                                      "progress", "extras"})
        problem = f"unknown entries {unknown[:5]}" if unknown else _malformed(data)
        if problem:
            raise _refused(path, problem)
        try:
            progress = json.loads(data["progress"])
        except (ValueError, RecursionError) as error:
            raise _load_error(path, error) from None
        if not isinstance(progress, dict):
            raise _refused(path, "progress must be the JSON text of an object")
        return cls(task_index=data["task_index"], step=data["step"], model=data["model"], optimizer=data["optimizer"],
                   scheduler=data["scheduler"], rng=data["rng"], progress=progress, extras=data.get("extras", {}))

    def progress_as(self, cls: type[T], folder: Path, steps: Sequence[int]) -> T:
        """The partial results as the dataclass ``cls``, after checking the checkpoint fits the run.

        ``steps``: the optimizer steps of each of the run's tasks.  The position must lie inside them, the
        RNG states must have the layout :func:`rng_state` gives, and the partial results must fit ``cls``'s
        fields (:func:`~losia_cl.plain.from_plain`) and hold one row of scores per stage reached (the base
        model and each task done), one score per task.
        """
        path = inside(folder, CHECKPOINT_NAME)
        if any(_layout(self.rng.get(key)) != _layout(value) for key, value in rng_state().items() if key != "cuda"):
            raise _refused(path, "rng must hold the random number generators' states as this version saves them")
        num_tasks = len(steps)
        if self.task_index >= num_tasks:
            raise _refused(path, f"it stands at task {self.task_index + 1}, but this run has {num_tasks} task(s)")
        total = steps[self.task_index]
        if self.step > total:
            raise _refused(path, f"it stands at step {self.step} of task {self.task_index + 1}, which has "
                                 f"{total} step(s) in this run")
        try:
            progress = from_plain(cls, self.progress, "progress")
        except DataError as error:
            raise _refused(path, str(error)) from None
        for key in _SCORE_ROWS:
            rows = self.progress.get(key, [])
            if len(rows) != self.task_index + 1 or any(len(row) != num_tasks for row in rows):
                raise _refused(path, f"progress.{key} must hold {self.task_index + 1} row(s) of {num_tasks} "
                                     f"score(s) (the base model and every task done), got "
                                     f"{[len(row) for row in rows][:6]} score(s) per row")
        return progress

    def restore(self, model: torch.nn.Module, optimizer: Any, scheduler: Any | None, folder: Path) -> None:
        """Load the saved states into freshly built ``model``/``optimizer``/``scheduler`` and the RNGs;
        :class:`CheckpointError` when they do not fit them."""
        try:
            model.load_state_dict(self.model)
            optimizer.load_state_dict(self.optimizer)
            _check_state_shapes(optimizer)
            if scheduler is not None and self.scheduler is not None:
                scheduler.load_state_dict(self.scheduler)
            set_rng_state(self.rng)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as error:
            raise _refused(inside(folder, CHECKPOINT_NAME), "its states do not fit this run's model, optimizer or "
                                                           f"scheduler ({_first_line(error)})") from None

    def restore_extras(self, extras: Any, folder: Path) -> None:
        """Load :attr:`extras` into the trainer's ``extras`` (its ``restore``); :class:`CheckpointError` when they
        do not fit it (another method, or replay switched on or off)."""
        try:
            extras.restore(self.extras)
        except (KeyError, TypeError, ValueError) as error:
            raise _refused(inside(folder, CHECKPOINT_NAME), f"its extras do not fit this run "
                                                           f"({_first_line(error)})") from None


def _check_state_shapes(optimizer: torch.optim.Optimizer) -> None:
    """Raise ``ValueError`` if a loaded per-parameter state tensor of one of torch's own optimizers (which keep
    every non-scalar state in its parameter's shape) has another shape; an optimizer that loads its state
    itself checks it there."""
    if type(optimizer).load_state_dict is not torch.optim.Optimizer.load_state_dict:
        return
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise ValueError(f"optimizer state {key!r} has shape {tuple(value.shape)}, its parameter "
                                     f"{tuple(param.shape)}")
