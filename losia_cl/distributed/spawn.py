"""Start N processes of one Python function in a fresh gloo (or NCCL) process group.

For the benchmark and the tests: ``spawn(fn, 2, *args)`` runs ``fn(ctx, *args)`` in two new
processes, each with its :class:`DistContext`, and returns their results in rank order.  The
group meets through a file in a temporary folder, so no network port is needed and several
groups can start side by side.  Runs are launched with ``torchrun`` (see docs/distributed.md).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from losia_cl.distributed.context import DistContext, init_process_group
from losia_cl.distributed.lifeline import bind


def spawn(fn: Callable[..., Any], nproc: int, *args: Any, backend: str = "gloo", threads: int = 1) -> list[Any]:
    """``[fn(ctx_rank0, *args), fn(ctx_rank1, *args), ...]`` computed in ``nproc`` new processes.

    ``fn`` must be importable (a module-level function).  An exception in any process is
    raised here with that process's traceback.  The processes die with this one.
    """
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="losia-cl-spawn-") as folder:
        mp.start_processes(_worker, args=(os.getpid(), fn, nproc, folder, backend, threads, args), nprocs=nproc,
                           start_method="spawn")
        # the results were pickled by this call's own worker processes into a private (mode 0700) folder
        return [pickle.loads((Path(folder) / f"result{rank}.pkl").read_bytes()) for rank in range(nproc)]


def _worker(rank: int, parent: int, fn: Callable[..., Any], nproc: int, folder: str, backend: str, threads: int,
            args: tuple[Any, ...]) -> None:
    bind(parent)  # no orphan keeps the group's file store and its threads alive when the caller is killed
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc))
    init_process_group(backend, init_method=f"file://{folder}/store", rank=rank, world_size=nproc)
    try:
        result = fn(DistContext(rank=rank, world_size=nproc, local_rank=rank, backend=backend), *args)
        (Path(folder) / f"result{rank}.pkl").write_bytes(pickle.dumps(result))
    finally:
        dist.destroy_process_group()
