"""DoRA (Liu et al. 2024) through peft: weight-decomposed low-rank adaptation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from losia_cl.methods.base import METHODS
from losia_cl.methods.peft_adapter import PeftAdapterMethod


@METHODS.register("dora")
@dataclass
class DoRAMethod(PeftAdapterMethod):
    """LoRA with a learned per-row magnitude (``use_dora=True``)."""

    name: str = "dora"

    def _lora_config_kwargs(self) -> dict[str, Any]:
        return {"use_dora": True}
