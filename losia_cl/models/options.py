"""Validated loading options (dtype, device, cache directory, offline mode) shared by every loader."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from losia_cl.errors import ConfigError

from .cache import resolve_cache_dir

#: Accepted dtype names -> torch dtype (``"auto"`` maps to ``None``: keep the checkpoint's dtype).
DTYPES: dict[str, torch.dtype | None] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float64": torch.float64,
    "auto": None,
}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: the validated form of :func:`~losia_cl.models.load_model`'s keywords.

    ``dtype`` ``None`` means "as stored" (``dtype="auto"``); built-in models
    are stored in float32.  ``seed`` only matters to randomly initialised
    built-ins (``tiny-llama``).
    """

    dtype: torch.dtype | None = torch.float32
    device: torch.device = torch.device("cpu")
    cache_dir: Path = field(default_factory=resolve_cache_dir)
    offline: bool = False
    seed: int = 0

    @classmethod
    def from_user(
        cls,
        *,
        dtype: torch.dtype | str | None = "float32",
        device: str | torch.device = "cpu",
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
        seed: int = 0,
    ) -> LoadOptions:
        """Validate user values; :class:`ConfigError` names the field and the allowed values."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        return cls(
            dtype=parse_dtype(dtype),
            device=parse_device(device),
            cache_dir=resolve_cache_dir(cache_dir),
            offline=resolve_offline(offline),
            seed=seed,
        )


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A floating torch dtype from a dtype or its name (``"bf16"``, ``"torch.float16"``, ``"auto"`` ...)."""
    allowed = ", ".join(DTYPES)
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype not in {d for d in DTYPES.values() if d is not None}:
            raise ConfigError(f"dtype must be a floating dtype ({allowed}), got {dtype}")
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key in DTYPES:
            return DTYPES[key]
    raise ConfigError(f"dtype must be one of {allowed} (or a torch floating dtype), got {dtype!r}")


def parse_device(device: str | torch.device) -> torch.device:
    """A torch device; :class:`ConfigError` for a malformed name or an accelerator torch cannot see."""
    try:
        parsed = device if isinstance(device, torch.device) else torch.device(str(device))
    except (RuntimeError, TypeError, ValueError) as err:
        raise ConfigError(f"device {device!r} is not a valid torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from err
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available here; use device='cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    if parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r} requested but MPS is not available here; use device='cpu'")
    return parsed


def resolve_offline(offline: bool | None) -> bool:
    """``offline`` if given, else whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    if offline is not None:
        if not isinstance(offline, bool):
            raise ConfigError(f"offline must be True, False or None, got {offline!r}")
        return offline
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
