"""Atomic file writes for the trainer (the torch-free helpers live in :mod:`losia_cl.files`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from losia_cl.files import DeferredSync, atomic_write, atomic_write_json, atomic_write_text

__all__ = ["DeferredSync", "atomic_write", "atomic_write_json", "atomic_write_text", "atomic_torch_save"]


def atomic_torch_save(path: str | os.PathLike[str], obj: Any, sync: DeferredSync | None = None) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; with ``sync`` the fsync and rename happen in its background."""
    import torch

    if sync is not None:
        return sync.write(path, lambda f: torch.save(obj, f))
    return atomic_write(path, lambda f: torch.save(obj, f))
