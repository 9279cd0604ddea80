"""Checkpoints of a method's progress through the stream: one file of plain data, replaced atomically.

A checkpoint holds tensors, numbers, strings, lists and dicts only: the model, optimizer and
scheduler state dicts, the RNG states (numpy's and Python's converted to integer tensors), the
step counters and the JSON text of the partial results.  It is read with
``torch.load(weights_only=True)``, which builds no Python object other than those, so a
checkpoint file can never run code.  A file in another format (an older losia-cl, another
tool, a truncated or corrupt file) is refused with a :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from losia_cl.errors import DataError
from losia_cl.trainer.files import DeferredSync, atomic_torch_save, inside

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "losia_cl.checkpoint/2"

_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size)


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
        detail = message.split("WeightsUnpickler error:")[-1]
        lines = [line.strip() for line in detail.splitlines() if line.strip()]
        reason = f"unreadable ({type(error).__name__}: {lines[0][:200] if lines else 'no details'})"
    return CheckpointError(f"{path}: refused to resume from this checkpoint: {reason}; "
                           "delete it to restart this method from its first task")


@dataclass
class Checkpoint:
    """Where a method stands: inside task ``task_index`` after ``step`` optimizer steps.

    ``model``/``optimizer``/``scheduler`` are state dicts of the task's prepared model and its
    optimizer; ``progress`` holds the JSON-able partial results (score rows, trackers, losses,
    timings).
    """

    task_index: int
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    rng: dict[str, Any]
    progress: dict[str, Any]

    def save(self, folder: Path, sync: DeferredSync | None = None) -> Path:
        """Write ``folder/checkpoint.pt`` atomically (with ``sync``: synced and renamed in its background)."""
        payload = {
            "format": CHECKPOINT_FORMAT, "task_index": int(self.task_index), "step": int(self.step),
            "model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "rng": self.rng,
            "progress": json.dumps(self.progress),
        }
        _check_plain(payload, "checkpoint")
        return atomic_torch_save(inside(folder, CHECKPOINT_NAME), payload, sync)

    @classmethod
    def load(cls, folder: Path) -> Checkpoint | None:
        """The checkpoint in ``folder`` (``None`` if there is none); :class:`CheckpointError` if unusable."""
        path = inside(folder, CHECKPOINT_NAME)
        if not path.exists():
            return None
        try:
            with warnings.catch_warnings():  # e.g. about the pickle protocol of a file we refuse anyway
                warnings.simplefilter("ignore")
                data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - every failure to read means the same to the user
            raise _load_error(path, error) from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(f"{path}: refused to resume from this checkpoint: its format is {found!r}, not "
                                  f"{CHECKPOINT_FORMAT!r}; delete it to restart this method from its first task")
        try:
            progress = json.loads(data["progress"])
            checkpoint = cls(task_index=data["task_index"], step=data["step"], model=data["model"],
                             optimizer=data["optimizer"], scheduler=data["scheduler"], rng=data["rng"],
                             progress=progress)
        except (KeyError, TypeError, ValueError) as error:
            raise _load_error(path, error) from None
        if not (isinstance(checkpoint.task_index, int) and isinstance(checkpoint.step, int)
                and isinstance(checkpoint.model, dict) and isinstance(checkpoint.progress, dict)):
            raise _load_error(path, ValueError("malformed entries"))
        return checkpoint

    def restore(self, model: torch.nn.Module, optimizer: Any, scheduler: Any | None, folder: Path) -> None:
        """Load the saved states into freshly built ``model``/``optimizer``/``scheduler`` and the RNGs."""
        try:
            model.load_state_dict(self.model)
            optimizer.load_state_dict(self.optimizer)
            if scheduler is not None and self.scheduler is not None:
                scheduler.load_state_dict(self.scheduler)
            set_rng_state(self.rng)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise _load_error(inside(folder, CHECKPOINT_NAME), error) from None
