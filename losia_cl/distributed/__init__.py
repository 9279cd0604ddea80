"""Data-parallel training: one process per device, launched by ``torchrun`` (see docs/distributed.md).

* :mod:`~losia_cl.distributed.context` — the process group (rank, world size, the few collectives);
* :mod:`~losia_cl.distributed.sharding` — one optimizer step's examples split across ranks, exactly;
* :mod:`~losia_cl.distributed.reduce` — gradient all-reduce in flat buckets, subnet blocks only;
* :mod:`~losia_cl.distributed.verify` — ``LOSIA_CL_DEBUG_DDP=1``: verify the ranks stay identical;
* :mod:`~losia_cl.distributed.launch` — ``losia-cl run --nproc N`` starts ``torchrun``;
* :mod:`~losia_cl.distributed.lifeline` — workers and ``torchrun`` die with the process that started them;
* :mod:`~losia_cl.distributed.spawn` — N processes of one function (benchmark, tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

_LAZY = {
    "DistContext": "losia_cl.distributed.context",
    "distributed_context": "losia_cl.distributed.context",
    "init_process_group": "losia_cl.distributed.context",
    "GradientReducer": "losia_cl.distributed.reduce",
    "losia_blocks": "losia_cl.distributed.reduce",
    "launch": "losia_cl.distributed.launch",
    "Piece": "losia_cl.distributed.sharding",
    "shard_step": "losia_cl.distributed.sharding",
    "check_identical": "losia_cl.distributed.verify",
    "debug_enabled": "losia_cl.distributed.verify",
    "spawn": "losia_cl.distributed.spawn",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from losia_cl.distributed.context import DistContext, distributed_context, init_process_group
    from losia_cl.distributed.launch import launch
    from losia_cl.distributed.reduce import GradientReducer, losia_blocks
    from losia_cl.distributed.sharding import Piece, shard_step
    from losia_cl.distributed.spawn import spawn
    from losia_cl.distributed.verify import check_identical, debug_enabled

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
