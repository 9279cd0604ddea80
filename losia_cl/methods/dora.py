"""DoRA (Liu et al. 2024) through peft: weight-decomposed low-rank adaptation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from losia_cl.methods.base import register_method
from losia_cl.methods.peft_adapter import PeftAdapterMethod


@register_method("dora")
@dataclass
class DoRAMethod(PeftAdapterMethod):
    """LoRA with a learned per-row magnitude (peft's use_dora=True)."""

    def _lora_config_kwargs(self) -> dict[str, Any]:
        return {"use_dora": True}
