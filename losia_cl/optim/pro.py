"""LoSiA-Pro: a linear layer whose backward pays only for the subnet it trains.

In *subnet mode* the layer saves only the input columns ``x[..., C]`` for backward and
computes the weight gradient only for the block, ``dW[R, C] = dy[..., R]^T x[..., C]`` (and
``db[R]``), which it hands to the optimizer through small *gradient sink* parameters of size
|R| x |C| (and |R|): no full-size weight gradient is ever allocated.  The input gradient
``dy W`` is computed in full, as the chain rule needs.  In *full mode* (the steps in which the
matrix records importance) the layer is an ordinary ``F.linear`` and the weight gets its full
gradient.  The optimizer switches the mode at the end of the step before the slot starts and
back right after the re-localization.

Gradient clipping: the sinks are parameters of the model, so ``clip_grad_norm_(model.parameters())``
sees the subnet gradients, the same norm plain LoSiA sees (it zeroes the gradient outside the
subnet).  Gradient accumulation: sinks accumulate like any ``.grad``; the subnet only changes
inside ``optimizer.step()``.  The sinks are left out of the model's ``state_dict``, and
:func:`unpatch` restores plain ``nn.Linear`` modules holding the trained weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losia_cl.errors import ConfigError

if TYPE_CHECKING:
    from losia_cl.optim.targets import Target


class SubnetOptimizer(Protocol):
    """The optimizer side of LoSiA-Pro (implemented by :class:`~losia_cl.optim.losia.LoSiA`)."""

    param_groups: list[dict[str, Any]]

    def register_grad_sink(self, param: Tensor, sink: Tensor) -> None: ...

    def register_subnet_observer(self, weight: Tensor, observer: Any) -> None: ...


class _SubnetLinear(torch.autograd.Function):
    """``y = x W^T + b``, saving only ``x[..., C]`` and returning only the block gradients."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, rows: Tensor, cols: Tensor,
        weight_sink: Tensor, bias_sink: Tensor | None,
    ) -> Tensor:
        device_type = x.device.type
        compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        ctx.input_dtype = x.dtype
        if compute_dtype is not None:
            x, weight = x.to(compute_dtype), weight.to(compute_dtype)
            bias = None if bias is None else bias.to(compute_dtype)
        with torch.autocast(device_type, enabled=False):
            y = F.linear(x, weight, bias)
        ctx.save_for_backward(x.index_select(-1, cols), weight, rows)
        ctx.has_bias = bias_sink is not None
        ctx.sink_dtype = weight_sink.dtype
        return y

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x_cols, weight, rows = ctx.saved_tensors
        grad_out = grad_out.to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad_out @ weight).to(ctx.input_dtype)
        grad_rows = grad_out.index_select(-1, rows).reshape(-1, rows.numel())
        grad_block = grad_rows.t() @ x_cols.reshape(-1, x_cols.shape[-1])
        grad_bias = grad_rows.sum(0) if ctx.has_bias else None
        sink_dtype = ctx.sink_dtype
        return (grad_x, None, None, None, None, grad_block.to(sink_dtype),
                None if grad_bias is None else grad_bias.to(sink_dtype))


class LoSiAProLinear(nn.Linear):
    """A drop-in for ``nn.Linear`` trained by LoSiA-Pro (holds the *same* weight and bias objects).

    It is an ``nn.Linear`` subclass so that structural code (target discovery, weight export)
    treats it as the linear layer it stands for.
    """

    def __init__(self, linear: nn.Linear, num_rows: int, num_cols: int) -> None:
        nn.Module.__init__(self)  # not nn.Linear.__init__: the weight and bias are the given ones
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        device = linear.weight.device
        self.weight_grad_sink = nn.Parameter(torch.zeros(num_rows, num_cols, device=device, dtype=linear.weight.dtype))
        self.bias_grad_sink = (
            nn.Parameter(torch.zeros(num_rows, device=device, dtype=linear.bias.dtype)) if linear.bias is not None else None
        )
        self.register_buffer("rows", torch.arange(num_rows, device=device), persistent=False)
        self.register_buffer("cols", torch.arange(num_cols, device=device), persistent=False)
        self.full = True

    def set_subnet(self, rows: Tensor, cols: Tensor, full: bool) -> None:
        """Observer callback of the optimizer: new subnet indices and mode."""
        self.rows, self.cols = rows, cols
        self.full = full
        self.weight.requires_grad_(full)
        if self.bias is not None:
            self.bias.requires_grad_(full)

    def release(self) -> None:
        """The optimizer is gone: full mode for good (an ordinary linear layer with full gradients)."""
        self.set_subnet(self.rows, self.cols, full=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.full or not torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        return _SubnetLinear.apply(
            x, self.weight, self.bias, self.rows, self.cols, self.weight_grad_sink, self.bias_grad_sink
        )

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.weight if keep_vars else self.weight.detach()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # the sinks are never saved (see _save_to_state_dict): keep the current ones
        for name, sink in (("weight_grad_sink", self.weight_grad_sink), ("bias_grad_sink", self.bias_grad_sink)):
            if sink is not None:
                state_dict.setdefault(prefix + name, sink.detach())
        super()._load_from_state_dict(state_dict, prefix, *args)

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding this layer's weight and bias (the same parameter objects)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight = self.weight
        linear.bias = self.bias
        self.weight.requires_grad_(True)
        if self.bias is not None:
            self.bias.requires_grad_(True)
        return linear

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"subnet={self.rows.numel()}x{self.cols.numel()}, full={self.full}")


def _replace_module(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is old:
                setattr(parent, child_name, new)
                return
    raise ValueError("module to replace not found in model")


def attach_pro(model: nn.Module, optimizer: SubnetOptimizer, targets: list[Target]) -> None:
    """Swap each target ``nn.Linear`` of ``model`` for a :class:`LoSiAProLinear` wired to ``optimizer``.

    A target that already is a LoSiA-Pro layer (of an earlier optimizer) is rebuilt for this one.
    """
    groups = {g["name"]: g for g in optimizer.param_groups if g["losia"]}
    for target in targets:
        module = target.module
        if not isinstance(module, nn.Linear):
            raise ConfigError(f"LoSiA-Pro needs nn.Linear targets; {target.name} is {type(module).__name__}")
        if isinstance(module, LoSiAProLinear):
            linear = module.to_linear()
            _replace_module(model, module, linear)
            module = linear
        group = groups[target.name]
        pro = LoSiAProLinear(module, group["num_rows"], group["num_cols"])
        _replace_module(model, module, pro)
        target.module = pro
        optimizer.register_grad_sink(pro.weight, pro.weight_grad_sink)
        if pro.bias_grad_sink is not None:
            optimizer.register_grad_sink(pro.bias, pro.bias_grad_sink)
        optimizer.register_subnet_observer(pro.weight, pro)


def unpatch(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoSiAProLinear` in ``model`` by a plain ``nn.Linear`` (in place; returns ``model``)."""
    for module in list(model.modules()):
        if isinstance(module, LoSiAProLinear):
            _replace_module(model, module, module.to_linear())
    return model
