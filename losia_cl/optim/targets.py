"""Find LoSiA's target matrices by model structure (never by parsing names at fixed positions)."""

from __future__ import annotations

import fnmatch
import logging
import math
from dataclasses import dataclass

from torch import Tensor, nn

from losia_cl.errors import ConfigError

logger = logging.getLogger(__name__)


def _conv1d_type() -> type | None:
    try:  # transformers' GPT-2 style Conv1D: y = x W + b with W of shape (d_in, d_out)
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    return Conv1D


def is_linear_like(module: nn.Module) -> bool:
    """``nn.Linear`` or transformers' ``Conv1D`` (whose weight is stored transposed)."""
    conv1d = _conv1d_type()
    return isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d))


@dataclass
class Target:
    """One target matrix: its module, time slot and subnet size factors."""

    name: str
    module: nn.Module
    slot: int
    row_factor: float
    col_factor: float = 1.0
    rounding: str = "floor"

    @property
    def weight(self) -> Tensor:
        return self.module.weight

    @property
    def bias(self) -> Tensor | None:
        return getattr(self.module, "bias", None)

    @property
    def transposed(self) -> bool:
        """True for ``Conv1D``: the weight is (d_in, d_out) and rows are its columns."""
        return not isinstance(self.module, nn.Linear)

    @property
    def shape(self) -> tuple[int, int]:
        """(d_out, d_in), whatever the storage layout."""
        w = self.weight
        return (w.shape[1], w.shape[0]) if self.transposed else (w.shape[0], w.shape[1])

    @property
    def subnet_shape(self) -> tuple[int, int]:
        d_out, d_in = self.shape
        return subnet_size(d_out, self.row_factor, self.rounding), subnet_size(d_in, self.col_factor, self.rounding)


def subnet_size(dim: int, factor: float, rounding: str = "floor") -> int:
    """``max(1, floor(factor * dim))`` (exact for factors such as 1/8 of powers of two).

    ``rounding='int'``: ``int(factor * dim)`` as the official code computes it (0 for a small
    ``factor * dim``, and one less when float error puts the product just below an integer).
    """
    if rounding == "int":
        return min(dim, int(factor * dim))
    return max(1, min(dim, math.floor(factor * dim + 1e-9)))


def find_decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The ``nn.ModuleList`` of repeated blocks holding linear layers, the largest by parameters."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        kinds = {type(child) for child in module}
        if len(kinds) != 1 or not any(is_linear_like(m) for m in module[0].modules()):
            continue
        size = sum(p.numel() for p in module.parameters())
        if best is None or size > best[0]:
            best = (size, name, module)
    return None if best is None else (best[1], best[2])


def _matches(name: str, pattern: str) -> bool:
    return name == pattern or name.endswith("." + pattern) or fnmatch.fnmatchcase(name, pattern)


def find_targets(
    model: nn.Module,
    rank_factor: float,
    target_modules: tuple[str, ...] | None = None,
    output_rank_factor: float = 0.0,
    *,
    head_first: bool = False,
    rounding: str = "floor",
) -> list[Target]:
    """Target matrices of ``model`` with their time slots.

    Default: every linear-like module inside the repeated decoder blocks; block ``i`` (its
    position in the ``ModuleList``) is slot ``i``.  ``target_modules`` patterns replace the
    default selection (modules outside the blocks get slots of their own after the blocks).
    ``output_rank_factor > 0`` adds the output head as the last slot (the first with
    ``head_first``), with ``floor(q V)`` rows and all columns.  ``rounding`` is passed to
    :func:`subnet_size`.  Raises :class:`ConfigError` listing the candidates when nothing matches.
    """
    found = find_decoder_blocks(model)
    block_of: dict[int, int] = {}
    if found is not None:
        for index, block in enumerate(found[1]):
            for module in block.modules():
                block_of[id(module)] = index
    num_blocks = len(found[1]) if found is not None else 0

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    candidates = [(n, m) for n, m in model.named_modules() if is_linear_like(m) and m is not head]
    if target_modules is None:
        chosen = [(n, m) for n, m in candidates if id(m) in block_of]
    else:
        chosen = [(n, m) for n, m in candidates if any(_matches(n, p) for p in target_modules)]
    if not chosen and not (output_rank_factor > 0 and head is not None):
        names = [n for n, _ in candidates]
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        what = f"target_modules={list(target_modules)}" if target_modules else "the decoder blocks"
        raise ConfigError(
            f"LoSiAConfig.target_modules: no linear layer of {type(model).__name__} matched {what}; "
            f"candidate linear modules: {shown or '(none: the model has no nn.Linear or Conv1D layer)'}"
        )

    targets: list[Target] = []
    next_free_slot = num_blocks
    seen: set[int] = set()
    for name, module in chosen:
        if id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        if id(module) in block_of:
            slot = block_of[id(module)]
        else:
            slot, next_free_slot = next_free_slot, next_free_slot + 1
        targets.append(Target(name, module, slot, rank_factor, rank_factor, rounding))
    if output_rank_factor > 0:
        if not isinstance(head, nn.Linear):
            raise ConfigError(
                f"LoSiAConfig.output_rank_factor = {output_rank_factor} needs an nn.Linear output head; "
                f"{type(model).__name__}.get_output_embeddings() is {type(head).__name__}"
            )
        if id(head.weight) not in seen:
            head_name = next(n for n, m in model.named_modules() if m is head)
            slot = -1 if head_first else next_free_slot
            targets.append(Target(head_name, head, slot, output_rank_factor, 1.0, rounding))
    # compact the slot numbers (blocks without targets leave no empty slot)
    order = {slot: i for i, slot in enumerate(sorted({t.slot for t in targets}))}
    for target in targets:
        target.slot = order[target.slot]
    logger.debug("LoSiA targets: %d matrices in %d slots", len(targets), len(order))
    return targets
