"""Data-parallel step benchmark: bytes all-reduced per step and step time, per method.

``losia-cl bench --nproc N`` starts N processes (gloo on CPU, NCCL on CUDA), builds every method on
the benchmark's Llama (the sizes of ``losia-cl bench``) and runs interleaved rounds of one
data-parallel step each: the global batch of ``batch_size`` sequences is split across the ranks,
gradients are all-reduced (:class:`~losia_cl.distributed.reduce.GradientReducer`), then clipped and
applied.  Per method it reports the median step time (slowest rank), the median time spent in the
all-reduce (after a barrier, so waiting for the slower rank is not counted), the bytes all-reduced per step, and the bytes the same gradients would take if every
existing gradient travelled whole.  LoSiA runs with random initial subnets, so the measured steps
are in the steady state (one layer records importance), not in an importance-init scoring phase.

``local_importance`` adds, for LoSiA-Pro, a variant measuring the communication of the remedy
that keeps the recording layer's importance EMAs per rank (docs/distributed.md): inside a slot the
recording matrices travel as subnet blocks like the others; once per slot their full gradient and
two EMAs are all-reduced (timed separately, amortized over the slot).  The variant's updates are
not those of a real remedy run (its importance is only local); only its communication counts.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

import torch

from losia_cl.bench_setup import BenchConfig, build_model, create_bench_method, lm_loss, sync_device
from losia_cl.distributed.context import DistContext
from losia_cl.distributed.reduce import Block, GradientReducer, losia_blocks

logger = logging.getLogger(__name__)

METHODS = ("full", "lora", "losia", "losia-pro")
#: name suffix of the local-importance variants
REMEDY = "/local-importance"


def recording_blocks(optimizer: Any) -> dict[int, Block]:
    """Subnet blocks of the matrices that record importance now (what the local-importance remedy sends)."""
    from losia_cl.optim.losia import LoSiA

    if not isinstance(optimizer, LoSiA):
        return {}
    out: dict[int, Block] = {}
    for group in optimizer.param_groups:
        if group["losia"] and optimizer.schedule.records(group["slot"], optimizer.global_step):
            state = optimizer.state[group["params"][0]]
            out[id(group["params"][0])] = Block(state["rows"], state["cols"], bool(group.get("transposed")))
            for bias in group["params"][1:]:
                out[id(bias)] = Block(state["rows"])
    return out


def _build(method: str, cfg: Any, ctx: DistContext, local_importance: bool = False) -> Callable[[], dict[str, float]]:
    """A closure running one data-parallel step of ``method``; returns its timings and bytes.

    ``local_importance``: the recording matrices travel as their subnet blocks too (the remedy's
    steps inside a slot; its slot-end all-reduce is timed separately by :func:`run_rank`).
    """
    from losia_cl.methods import TaskContext
    from losia_cl.methods.losia import LoSiAMethod
    from losia_cl.step import apply_update

    trainer_method = create_bench_method(method, cfg)
    if isinstance(trainer_method, LoSiAMethod):
        # the steady state, one layer recording at a time: with init="importance" every layer records (and
        # sends its full gradient) during the task's first T steps
        trainer_method = replace(trainer_method, losia_options={**trainer_method.losia_options, "init": "random"})
    context = TaskContext(task_index=0, num_tasks=1, num_training_steps=1000, seed=cfg.seed)
    model = trainer_method.prepare(build_model(cfg), context)
    optimizer, scheduler = trainer_method.build_optimizer(model, context)
    period = getattr(getattr(optimizer, "config", None), "period", 0)
    generator = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.seq_len), generator=generator).to(cfg.device)
    local = ids[ctx.rank::ctx.world_size]  # every row has seq_len tokens: the mean scales by the row share
    share = local.shape[0] / ids.shape[0]
    reducer = GradientReducer(ctx)

    def step() -> dict[str, float]:
        timing: dict[str, float] = {"period": period}
        recording = recording_blocks(optimizer)
        blocks = {**losia_blocks(optimizer), **(recording if local_importance else {})}

        def reduce(module: torch.nn.Module) -> None:
            params = list(module.parameters())
            sizes = {id(p): p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None}
            timing["dense_bytes"] = sum(sizes.values())
            timing["recording_bytes"] = sum(n for key, n in sizes.items() if key in recording)
            sync_device(cfg.device)
            ctx.barrier()  # time the communication, not the wait for the slower rank
            started = time.perf_counter()
            timing["bytes"] = reducer(params, blocks)
            sync_device(cfg.device)
            timing["reduce_seconds"] = time.perf_counter() - started

        sync_device(cfg.device)
        started = time.perf_counter()
        loss = lm_loss(model, {"input_ids": local}) * share
        loss.backward()
        apply_update(model, optimizer, scheduler, max_grad_norm=1.0, reduce_gradients=reduce)
        sync_device(cfg.device)
        timing["seconds"] = time.perf_counter() - started
        return timing

    return step


def _time_all_reduce(ctx: DistContext, nbytes: int, device: str, repeats: int = 3) -> float:
    """Median seconds of one all-reduce of ``nbytes`` bytes of float32 (0 bytes: 0 s)."""
    if nbytes <= 0:
        return 0.0
    buffer = torch.zeros(nbytes // 4, device=device)
    times = []
    for _ in range(repeats):
        ctx.barrier()
        sync_device(device)
        started = time.perf_counter()
        ctx.all_reduce_(buffer)
        sync_device(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_rank(ctx: DistContext, config: dict[str, Any], methods: Sequence[str], local_importance: bool,
             threads: int | None) -> dict[str, Any]:
    """One rank of the benchmark (called in every process by :func:`~losia_cl.distributed.spawn.spawn`)."""
    if threads:
        torch.set_num_threads(threads)
    cfg = BenchConfig(**config)
    if cfg.device.startswith("cuda"):
        cfg = replace(cfg, device=f"cuda:{ctx.local_rank}")
        torch.cuda.set_device(ctx.local_rank)
    steps = {m: _build(m, cfg, ctx) for m in methods}
    if local_importance:
        steps.update({f"{m}{REMEDY}": _build(m, cfg, ctx, True) for m in methods if m == "losia-pro"})
    names = list(steps)
    for _ in range(cfg.warmup):
        for m in names:
            ctx.barrier()
            steps[m]()
    records: dict[str, list[dict[str, float]]] = {m: [] for m in names}
    for r in range(cfg.rounds):
        for m in names[r % len(names):] + names[: r % len(names)]:
            ctx.barrier()
            records[m].append(steps[m]())
    slot_end = {m: _time_all_reduce(ctx, int(3 * records[m][-1]["recording_bytes"]), cfg.device)
                for m in names if m.endswith(REMEDY)}
    return {"records": records, "slot_end": slot_end, "threads": torch.get_num_threads()}


def summarize(ranks: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: medians over rounds of the slowest rank's step and all-reduce times, mean bytes per step.

    For the local-importance variants the slot end (full gradient and two EMAs of the recording
    matrices, all-reduced once per slot of ``period`` steps) is added, amortized over the slot.
    """
    out: dict[str, dict[str, float]] = {}
    for m, rounds in ranks[0]["records"].items():
        n = len(rounds)
        step = [max(r["records"][m][i]["seconds"] for r in ranks) for i in range(n)]
        reduce = [max(r["records"][m][i]["reduce_seconds"] for r in ranks) for i in range(n)]
        row = {
            "step_seconds": statistics.median(step),
            "reduce_seconds": statistics.median(reduce),
            "bytes": statistics.mean(x["bytes"] for x in rounds),
            "dense_bytes": statistics.mean(x["dense_bytes"] for x in rounds),
        }
        if m.endswith(REMEDY):
            period = rounds[-1]["period"]
            extra = max(r["slot_end"][m] for r in ranks) / period
            row["step_seconds"] += extra
            row["reduce_seconds"] += extra
            row["bytes"] += 3 * rounds[-1]["recording_bytes"] / period
        out[m] = row
    return out


def format_table(summary: dict[str, dict[str, float]], nproc: int) -> str:
    lines = [f"| method | step (s), {nproc} processes | all-reduce (s) | all-reduce share | MiB all-reduced per step "
             "| MiB if every gradient went whole |", "|---|---|---|---|---|---|"]
    for m, row in summary.items():
        lines.append(f"| {m} | {row['step_seconds']:.3f} | {row['reduce_seconds']:.3f} | "
                     f"{row['reduce_seconds'] / row['step_seconds']:.1%} | {row['bytes'] / 2**20:.2f} | "
                     f"{row['dense_bytes'] / 2**20:.2f} |")
    return "\n".join(lines)


def run(cfg: Any, nproc: int, methods: Sequence[str] = METHODS, local_importance: bool = True,
        threads: int | None = None) -> tuple[dict[str, dict[str, float]], str]:
    """Spawn ``nproc`` ranks and run the benchmark: the per-method summary and its report (Markdown)."""
    from losia_cl.distributed.spawn import spawn

    backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
    ranks = spawn(run_rank, nproc, asdict(cfg), tuple(methods), local_importance, threads, backend=backend,
                  threads=threads or 1)
    summary = summarize(ranks)
    head = (f"{cfg}\n{nproc} processes ({backend}), {ranks[0]['threads']} thread(s) each, torch {torch.__version__}; "
            f"global batch {cfg.batch_size} x {cfg.seq_len} tokens split across the processes")
    return summary, head + "\n" + format_table(summary, nproc)
