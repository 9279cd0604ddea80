"""The process group a run trains in: rank, world size and the few collectives the trainer needs.

One :class:`DistContext` is created per run and handed to whatever needs it (no module-level
state).  With one process every collective is the identity, so the trainer's code path is the
same with and without ``torchrun``.  Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment)
:func:`distributed_context` joins the process group: gloo on CPU, NCCL on CUDA, unless a backend
is named.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from losia_cl.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKENDS = ("auto", "gloo", "nccl", "mpi")
#: how long a collective may wait for the slowest rank (the base-model evaluation can be slow on CPU)
TIMEOUT = _dt.timedelta(minutes=60)


def env_world_size() -> int:
    """Processes in the job according to the launcher's environment (1 outside ``torchrun``)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE = {os.environ['WORLD_SIZE']!r} is not an integer") from None


def resolve_backend(name: str, device: torch.device) -> str:
    """``auto`` -> NCCL for CUDA devices, gloo otherwise; any other name is checked and returned."""
    if name not in BACKENDS:
        raise ConfigError(f"dist_backend = {name!r} is invalid: it must be one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return name


def resolve_rank_device(name: str, local_rank: int = 0) -> torch.device:
    """The device of this process: ``auto``/``cuda`` become ``cuda:<local rank>`` when CUDA is there."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; ``world_size == 1`` means a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files, logs progress and prints."""
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In-place all-reduce (``sum``, ``max`` or ``min``); returns ``tensor``."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                                        "min": dist.ReduceOp.MIN}[op])
        return tensor

    def sum_float(self, value: float) -> float:
        """``value`` summed over the ranks (in float64)."""
        if not self.enabled:
            return value
        return float(self.all_reduce_(torch.tensor([value], dtype=torch.float64, device=self._comm_device()))[0])

    def max_int(self, value: int) -> int:
        if not self.enabled:
            return value
        return int(self.all_reduce_(torch.tensor([value], dtype=torch.int64, device=self._comm_device()), "max")[0])

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def decide(self, decision: Callable[[], T]) -> T:
        """Run ``decision`` on rank 0 only and return its result on every rank.

        Use it for every choice read from disk (does a file exist, what does it hold), so that
        all ranks take the same branch even when they do not share a file system.  An exception
        raised by ``decision`` is raised on every rank.
        """
        if not self.enabled:
            return decision()
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, decision())
            except Exception as error:  # re-raised on every rank below
                outcome = (False, _portable(error))
        ok, value = self.broadcast_object(outcome)
        if not ok:
            raise value
        return value

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items of ``items``, taken round-robin (item i goes to rank i mod N)."""
        return list(items[self.rank::self.world_size])

    def _comm_device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def _portable(error: Exception) -> Exception:
    """``error`` if it survives pickling, else a RuntimeError carrying its message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def init_process_group(backend: str, **options: Any) -> None:
    """``torch.distributed.init_process_group(backend, **options)``, made safe to tear down.

    ``torch.distributed.nn.functional`` binds the default group into the default arguments of its
    functions when it is first imported, and transformers imports it with its models.  Imported
    after the group exists, it keeps the group and its worker threads alive past
    ``destroy_process_group`` until interpreter shutdown, where tearing them down can abort the
    process ("terminate called without an active exception").  Imported first, it binds nothing.
    """
    import torch.distributed as dist
    import torch.distributed.nn.functional  # noqa: F401  (see above: before the group exists)

    dist.init_process_group(backend, **options)


@contextmanager
def distributed_context(backend: str = "auto", device: str = "auto") -> Iterator[tuple[DistContext, torch.device]]:
    """The job's :class:`DistContext` and this process's device, joining the process group if needed.

    Outside ``torchrun`` (or with one process) nothing is initialised.  A process group that
    is already initialised (e.g. by the caller) is used as it is and left open.
    """
    world_size = env_world_size()
    if world_size == 1:
        resolve_backend(backend, torch.device("cpu"))  # validate the name even when unused
        yield DistContext(), resolve_rank_device(device)
        return
    import torch.distributed as dist

    from losia_cl.distributed.lifeline import bind_torchrun_worker

    bind_torchrun_worker()  # under torchrun: die with the agent rather than train on as an orphan
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    rank_device = resolve_rank_device(device, local_rank)
    chosen = resolve_backend(backend, rank_device)
    owner = not dist.is_initialized()
    if owner:
        if rank_device.type == "cuda":
            torch.cuda.set_device(rank_device)
        init_process_group(chosen, timeout=TIMEOUT)
    else:
        chosen = dist.get_backend()
    ctx = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, backend=chosen)
    logger.info("rank %d of %d (%s, %s)", ctx.rank, ctx.world_size, chosen, rank_device)
    try:
        yield ctx, rank_device
    finally:
        if owner and dist.is_initialized():
            dist.destroy_process_group()
