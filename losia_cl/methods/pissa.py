"""PiSSA (Meng et al. 2024) through peft: adapters initialised on the principal singular subspace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from losia_cl.methods.base import register_method
from losia_cl.methods.peft_adapter import PeftAdapterMethod


@register_method("pissa")
@dataclass
class PiSSAMethod(PeftAdapterMethod):
    """LoRA whose A, B start from the top-r singular triplets (fast SVD, 16 iterations)."""

    def _lora_config_kwargs(self) -> dict[str, Any]:
        return {"init_lora_weights": "pissa_niter_16"}
