"""Gradient all-reduce after the backward passes of one optimizer step, in flat buckets.

Every parameter gradient that exists is summed over the ranks (the loss is already scaled for
the global batch, see :mod:`losia_cl.distributed.sharding`).  Gradients known to be zero outside
a sub-matrix — plain LoSiA's masked gradients outside a matrix's recording slot — travel as
that sub-matrix only (:func:`losia_blocks`); LoSiA-Pro needs nothing of the kind, since its
weights have no gradient outside their slot and its gradient sinks are subnet-sized already.
The reducer counts the bytes it sends, for the benchmark and the logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from losia_cl.distributed.context import DistContext

#: bytes per flat all-reduce buffer (the default bucket size of torch's DistributedDataParallel)
BUCKET_BYTES = 25 * 2**20


@dataclass(frozen=True)
class Block:
    """The part of a gradient that may be non-zero: rows × cols of a (d_out, d_in) view, or rows of a bias."""

    rows: Tensor
    cols: Tensor | None = None
    transposed: bool = False

    def take(self, grad: Tensor) -> Tensor:
        if self.cols is None:
            return grad.index_select(0, self.rows)
        view = grad.t() if self.transposed else grad
        return view.index_select(0, self.rows).index_select(1, self.cols)

    def put(self, grad: Tensor, block: Tensor) -> None:
        if self.cols is None:
            grad.index_copy_(0, self.rows, block)
            return
        view = grad.t() if self.transposed else grad
        view.index_put_((self.rows.unsqueeze(1), self.cols.unsqueeze(0)), block)


class GradientReducer:
    """Sums gradients over the ranks of ``ctx``; ``bytes_sent`` counts the payload since creation."""

    def __init__(self, ctx: DistContext, bucket_bytes: int = BUCKET_BYTES) -> None:
        self.ctx = ctx
        self.bucket_bytes = bucket_bytes
        self.bytes_sent = 0
        self.last_bytes = 0
        self.calls = 0

    def __call__(self, params: Iterable[Tensor], blocks: Mapping[int, Block] | None = None) -> int:
        """All-reduce (SUM) the gradients of ``params`` in place; returns the bytes sent.

        ``blocks`` maps ``id(param)`` to the :class:`Block` outside which its gradient is zero.
        """
        blocks = blocks or {}
        seen: set[int] = set()
        entries: list[tuple[Tensor, Tensor, Block | None]] = []  # (grad, payload, block)
        for p in params:
            if id(p) in seen or p.grad is None:
                continue
            seen.add(id(p))
            block = blocks.get(id(p))
            entries.append((p.grad, p.grad if block is None else block.take(p.grad), block))
        sent = 0
        for bucket in _buckets(entries, self.bucket_bytes):
            payloads = [payload for _, payload, _ in bucket]
            flat = torch.cat([t.reshape(-1) for t in payloads]) if len(payloads) > 1 else payloads[0].reshape(-1).clone()
            if self.ctx.enabled:
                self.ctx.all_reduce_(flat)
            sent += flat.numel() * flat.element_size()
            for (grad, payload, block), reduced in zip(bucket, flat.split([t.numel() for t in payloads])):
                if block is None:
                    grad.copy_(reduced.view_as(grad))
                else:
                    block.put(grad, reduced.view_as(payload))
        self.calls += 1
        self.last_bytes = sent
        self.bytes_sent += sent
        return sent


def _buckets(entries: list[tuple[Tensor, Tensor, Any]], cap: int) -> Iterable[list[tuple[Tensor, Tensor, Any]]]:
    """Consecutive entries of one dtype and device, up to ``cap`` bytes each (a larger tensor alone)."""
    bucket: list[tuple[Tensor, Tensor, Any]] = []
    size = 0
    for entry in entries:
        payload = entry[1]
        nbytes = payload.numel() * payload.element_size()
        if bucket and (size + nbytes > cap or payload.dtype != bucket[0][1].dtype
                       or payload.device != bucket[0][1].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(entry)
        size += nbytes
    if bucket:
        yield bucket


def losia_blocks(optimizer: Any) -> dict[int, Block]:
    """``{id(param): Block}`` for the target matrices of a LoSiA optimizer that do not record now.

    Outside its recording slot a plain-LoSiA matrix's gradient is zero outside W[R, C] (and its
    bias's outside R), so only that block needs to travel.  Any other optimizer: ``{}``.
    """
    from losia_cl.optim.losia import LoSiA

    if not isinstance(optimizer, LoSiA):
        return {}
    out: dict[int, Block] = {}
    for group in optimizer.param_groups:
        if not group["losia"] or optimizer.schedule.records(group["slot"], optimizer.global_step):
            continue
        weight = group["params"][0]
        state = optimizer.state[weight]
        rows, cols = state["rows"], state["cols"]
        out[id(weight)] = Block(rows, cols, bool(group.get("transposed")))
        for bias in group["params"][1:]:
            out[id(bias)] = Block(rows)
    return out
