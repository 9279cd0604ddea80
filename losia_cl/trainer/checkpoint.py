"""Checkpoints of a method's progress through the stream: one file, replaced atomically."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from losia_cl.trainer.files import DeferredSync, atomic_torch_save

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """The RNG states a run consumes (torch CPU/CUDA, numpy, random)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
        return atomic_torch_save(folder / CHECKPOINT_NAME, self.__dict__, sync)

    @classmethod
    def load(cls, folder: Path) -> Checkpoint | None:
        path = folder / CHECKPOINT_NAME
        if not path.exists():
            return None
        # the RNG states hold numpy arrays and Python tuples: this is our own file, written by save()
        data = torch.load(path, map_location="cpu", weights_only=False)
        return cls(**data)
