"""How one optimizer step's examples are split across ranks without changing what is optimized.

The one-process step is ``L = (1/A) Σ_m mean_CE(micro-batch m)`` over its ``A`` micro-batches
(the mean runs over the answer tokens of each micro-batch).  :func:`shard_step` lays the
step's examples end to end, in order, and gives each rank one contiguous run of nearly
``E/N`` of them, cut into *pieces* that never cross a micro-batch boundary.  A piece is a
whole micro-batch (its loss is the one-process ``mean_CE / A``, computed on exactly the same
tensors) or part of one, whose loss is ``Σ_CE(piece) / (A · T_m)`` with ``T_m`` the answer
tokens of the whole micro-batch ``m``.  Summed over ranks the pieces give ``L`` and its gradient
exactly, so gradients are all-reduced with SUM, not averaged again.

When ``N`` divides ``A`` and the micro-batches are equally large, every piece is a whole
micro-batch.  A rank left without examples (a step with fewer examples than ranks) gets one
example at weight 0, so that every rank produces the same set of gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Piece:
    """Examples of one micro-batch that one rank processes."""

    micro: int  #: index of the micro-batch (within the step) the examples belong to
    indices: tuple[int, ...]  #: example indices, in the micro-batch's order
    whole: bool  #: the piece is the entire micro-batch
    weight: float = 1.0  #: 0 for the placeholder of a rank without examples


def shard_step(micro_batches: Sequence[Sequence[int]], rank: int, world_size: int) -> list[Piece]:
    """This rank's pieces of one optimizer step (see the module docstring)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    flat = [(m, i) for m, micro in enumerate(micro_batches) for i in micro]
    if not flat:
        raise ValueError("an optimizer step needs at least one example")
    base, extra = divmod(len(flat), world_size)
    start = rank * base + min(rank, extra)
    mine = flat[start:start + base + (1 if rank < extra else 0)]
    if not mine:
        m, i = flat[0]
        return [Piece(m, (i,), whole=len(micro_batches[m]) == 1, weight=0.0)]
    pieces: list[Piece] = []
    for m, i in mine:
        if pieces and pieces[-1].micro == m:
            pieces[-1] = Piece(m, pieces[-1].indices + (i,), whole=False)
        else:
            pieces.append(Piece(m, (i,), whole=False))
    return [Piece(p.micro, p.indices, whole=len(p.indices) == len(micro_batches[p.micro])) for p in pieces]


def answer_tokens(feature: Mapping[str, Any]) -> int:
    """Answer tokens of one training example: the labels after the first that are not -100."""
    return sum(1 for label in list(feature["labels"])[1:] if label != IGNORE_INDEX)


def piece_loss(model: nn.Module, batch: Mapping[str, Tensor], piece: Piece, num_micro: int,
               micro_tokens: int) -> Tensor:
    """This piece's share of the step loss (module docstring); ``micro_tokens`` = T_m."""
    from losia_cl.lm_loss import answer_cross_entropy, answer_logits

    logits, targets = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    if piece.whole:
        loss = answer_cross_entropy(logits, targets) / num_micro
    elif targets.numel() == 0 or micro_tokens == 0:
        loss = logits.sum() * 0.0
    else:
        import torch.nn.functional as F

        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / (micro_tokens * num_micro)
    return loss * piece.weight if piece.weight != 1.0 else loss
