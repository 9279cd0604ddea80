"""Atomic file writes for the trainer (the torch-free helpers live in :mod:`losia_cl.files`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from losia_cl.files import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "atomic_torch_save"]


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
