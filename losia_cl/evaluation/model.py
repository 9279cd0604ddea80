"""The model ``losia-cl eval`` scores: any :func:`~losia_cl.models.load_model` spec, or a PEFT adapter folder.

A folder holding ``adapter_config.json`` and no ``config.json`` is a PEFT adapter (what
``peft_model.save_pretrained`` writes): its base model (``--base-model``, else the adapter's
``base_model_name_or_path``) is loaded with :func:`~losia_cl.models.load_model`, the adapter applied and
merged into it (``merge_and_unload``), and the base's tokenizer used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from losia_cl.errors import ConfigError

#: The file that makes a folder a PEFT adapter.
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class ModelPlan:
    """What to load: ``spec`` (a load_model spec), the adapter folder to apply (or None), the probe's reference."""

    spec: str
    adapter: Path | None
    reference: str | None


def is_adapter_folder(spec: str) -> bool:
    """Whether ``spec`` is a folder holding a PEFT adapter (``adapter_config.json``, no ``config.json``)."""
    path = Path(spec).expanduser()
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def plan_models(model: str, base_model: str | None) -> ModelPlan:
    """Resolve ``--model`` and ``--base-model``; :class:`ConfigError` for an adapter whose base is unknown."""
    if not is_adapter_folder(model):
        return ModelPlan(spec=model, adapter=None, reference=base_model)
    folder = Path(model).expanduser()
    base = base_model
    if base is None:
        try:
            recorded = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as error:
            raise ConfigError(f"{folder / ADAPTER_CONFIG}: cannot read it ({error}); give its base with "
                              "--base-model") from None
        if not isinstance(recorded, str) or not recorded.strip():
            raise ConfigError(f"--model {model}: a PEFT adapter whose {ADAPTER_CONFIG} names no base model; "
                              "give it with --base-model (e.g. --base-model smollm2-135m)")
        base = recorded
    return ModelPlan(spec=base, adapter=folder, reference=base)


def apply_adapter(base: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """``base`` with the PEFT adapter of ``folder`` merged into its weights (eval mode)."""
    try:
        from peft import PeftModel
    except ImportError as error:  # pragma: no cover - peft is a dependency
        raise ConfigError(f"--model {folder}: a PEFT adapter needs the peft package ({error})") from None
    try:
        merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    except Exception as error:  # noqa: BLE001 - shapes that do not fit, unknown modules, bad files
        text = " ".join(str(error).split())[:300]
        raise ConfigError(f"--model {folder}: the PEFT adapter does not load onto its base model "
                          f"({type(error).__name__}: {text})") from None
    return merged.eval()


def load_seeded(spec: str, *, dtype: torch.dtype, device: torch.device, seed: int) -> tuple[Any, Any]:
    """:func:`~losia_cl.models.load_model` as ``losia-cl run`` loads its models (global seed set first)."""
    from losia_cl.models import load_model

    torch.manual_seed(seed)
    return load_model(spec, dtype=dtype, device=device, seed=seed)

