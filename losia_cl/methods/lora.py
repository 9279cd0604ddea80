"""LoRA (Hu et al. 2022) through peft: the TRACE baseline."""

from __future__ import annotations

from dataclasses import dataclass

from losia_cl.methods.base import register_method
from losia_cl.methods.peft_adapter import PeftAdapterMethod


@register_method("lora")
@dataclass
class LoRAMethod(PeftAdapterMethod):
    """Low-rank adapters on every linear layer of the decoder blocks."""
