"""Debug checks that every rank holds the same state (``LOSIA_CL_DEBUG_DDP=1``).

The data-parallel trainer keeps the ranks identical by construction: the same seed, the same
all-reduced gradients, the same deterministic updates and re-localizations.  With the variable
set it also *verifies* this: after every optimizer step the LoSiA subnets of all ranks are
compared (a digest per matrix, gathered to every rank), and after every task the weights.
A difference raises at once, naming the matrix and the ranks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import torch
from torch import Tensor

from losia_cl.distributed.context import DistContext

DEBUG_ENV = "LOSIA_CL_DEBUG_DDP"


def debug_enabled() -> bool:
    """True when ``LOSIA_CL_DEBUG_DDP`` is set to anything but empty, 0 or false."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def digest(tensor: Tensor) -> str:
    data = tensor.detach().cpu().contiguous()
    return hashlib.sha1(data.view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def check_identical(ctx: DistContext, tensors: Mapping[str, Tensor | tuple[Tensor, ...]], what: str) -> int:
    """Raise RuntimeError unless every rank holds the same ``tensors``; returns how many were compared."""
    mine = {
        name: "/".join(digest(t) for t in (value if isinstance(value, tuple) else (value,)))
        for name, value in tensors.items()
    }
    everyone = ctx.gather_objects(mine)
    for rank, theirs in enumerate(everyone):
        if theirs == everyone[0]:
            continue
        names = sorted(set(theirs) | set(everyone[0]))
        first = next(n for n in names if theirs.get(n) != everyone[0].get(n))
        raise RuntimeError(f"{what}: rank {rank} differs from rank 0 at {first!r} "
                           f"({sum(theirs.get(n) != everyone[0].get(n) for n in names)} of {len(names)} differ)")
    return len(mine)
