"""Effective weights of the decoder blocks' linear layers, whatever wraps them (LoSiA-Pro, peft)."""

from __future__ import annotations

from torch import Tensor, nn

from losia_cl.methods.base import TargetWeight
from losia_cl.optim.targets import find_decoder_blocks, is_linear_like


def _effective_weight(module: nn.Module) -> Tensor | None:
    """(d_out, d_in) weight of a linear-like module; peft LoRA layers are merged (W0 + ΔW, DoRA rescaled)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        LoraLayer = ()  # type: ignore[assignment]
    from losia_cl.optim.pro import LoSiAProLinear

    if LoraLayer and isinstance(module, LoraLayer):
        base = module.get_base_layer()
        weight = base.weight.detach()
        if getattr(base, "fan_in_fan_out", False) or not isinstance(base, nn.Linear):
            weight = weight.t()
        merged = weight.float().clone()
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue
            merged = merged + module.get_delta_weight(adapter).detach().float()
            magnitude = getattr(module, "lora_magnitude_vector", {})
            if adapter in magnitude:  # DoRA: rows rescaled to the learned magnitudes
                norm = merged.norm(p=2, dim=1, keepdim=True)
                merged = merged * (magnitude[adapter].weight.detach().float().view(-1, 1) / norm)
        return merged
    if isinstance(module, LoSiAProLinear) or isinstance(module, nn.Linear):
        return module.weight.detach()
    if is_linear_like(module):  # Conv1D stores (d_in, d_out)
        return module.weight.detach().t()
    return None


def block_linear_weights(model: nn.Module) -> list[TargetWeight]:
    """A :class:`TargetWeight` ``("layers.<i>.<path in block>", i, W)`` for every linear layer in the decoder blocks.

    Names are the same for a plain, LoSiA-Pro-patched or peft-wrapped model, so methods can be
    compared matrix by matrix; ``i`` is the block's position in the decoder's ``ModuleList``.
    """
    found = find_decoder_blocks(model)
    if found is None:
        return []
    out: list[TargetWeight] = []
    for index, block in enumerate(found[1]):
        skip: set[int] = set()
        for rel, module in block.named_modules():
            if id(module) in skip or not rel:
                continue
            weight = _effective_weight(module)
            if weight is None:
                continue
            skip.update(id(m) for m in module.modules())  # a peft layer's base_layer / lora_A / lora_B
            out.append(TargetWeight(f"layers.{index}.{rel}", index, weight))
    return out
