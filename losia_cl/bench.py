"""Training-step benchmark: the registered methods (full fine-tuning, LoRA, LoSiA, ...) measured side by side.

Speed: every method (default: every registered method) is built once in one process; then rounds
run the methods in turn (order rotated each round), one timed training step each, and the median
per method is reported with its ratio to a reference method (default: full fine-tuning).
Memory: each method runs a few steps in a fresh subprocess and reports its peak resident memory
(CPU, with glibc's mmap threshold fixed at 64 KiB so that freed tensors leave the resident set) or
``torch.cuda.max_memory_allocated`` (CUDA), minus the memory in use once model and optimizer are
built, i.e. what training adds on top of the weights.

Run ``python -m losia_cl.bench`` (``--help`` for the sizes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from losia_cl.fields import documented
from losia_cl.help_formatter import DefaultsHelpFormatter

logger = logging.getLogger(__name__)


def method_names() -> tuple[str, ...]:
    """The methods benchmarked by default: every registered one."""
    from losia_cl.methods import method_names as registered

    return tuple(registered())


@dataclass(frozen=True)
class BenchConfig:
    """Model and batch sizes of the benchmark (defaults: a mid-sized Llama that 2 CPU cores time in minutes).

    ``rank_factor`` is given to every method that has a ``rank_factor`` option (LoSiA's p; the
    adapter methods match their rank to LoSiA's trainable-parameter count at that p).
    """

    hidden_size: int = documented("Hidden size of the benchmark's randomly initialised Llama.", 768)
    intermediate_size: int = documented("Intermediate (MLP) size of the Llama.", 2048)
    num_layers: int = documented("Decoder layers of the Llama.", 8)
    vocab_size: int = documented("Vocabulary size of the Llama.", 8192)
    batch_size: int = documented("Sequences per training step.", 4)
    seq_len: int = documented("Tokens per sequence.", 256)
    rank_factor: float = documented("LoSiA's rank factor p; LoRA's rank is matched to LoSiA's trainable "
                                    "parameters at this p.", 1 / 8)
    rounds: int = documented("Timed rounds; each times one step of every method, the order rotated.", 5)
    warmup: int = documented("Untimed steps of every method before the rounds.", 1)
    device: str = documented("Torch device (cpu, cuda, cuda:N).", "cpu")
    seed: int = documented("Seed of the weights and of the random batch.", 0)


def build_model(cfg: BenchConfig) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=max(1, cfg.hidden_size // 64),
        num_key_value_heads=max(1, cfg.hidden_size // 64), max_position_embeddings=max(cfg.seq_len, 64),
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config).to(cfg.device)


def _lm_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss


def create_bench_method(name: str, cfg: BenchConfig) -> Any:
    """The method registered as ``name`` with lr 1e-5 and, if it has that option, ``rank_factor``."""
    from losia_cl.methods import METHODS, create_method

    options: dict[str, float] = {"lr": 1e-5}
    if "rank_factor" in {f.name for f in fields(METHODS.get(name))}:
        options["rank_factor"] = cfg.rank_factor
    return create_method(name, **options)


def build_step(method: Any, cfg: BenchConfig) -> Callable[[], None]:
    """A closure running one training step (:func:`~losia_cl.trainer.step.train_step`) of ``method``.

    ``method``: a registered method name or a method object; the step trains on a fixed random batch
    with the language-model loss over every token and gradient clipping at 1.0.
    """
    from losia_cl.methods import TaskContext
    from losia_cl.trainer.step import train_step

    trainer_method = create_bench_method(method, cfg) if isinstance(method, str) else method
    context = TaskContext(task_index=0, num_tasks=1, num_training_steps=1000, seed=cfg.seed)
    model = trainer_method.prepare(build_model(cfg), context)
    optimizer, scheduler = trainer_method.build_optimizer(model, context)
    generator = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.seq_len), generator=generator).to(cfg.device)

    def step() -> None:
        train_step(model, optimizer, scheduler, [{"input_ids": ids}], loss_divisor=1, max_grad_norm=1.0,
                   loss_fn=_lm_loss)

    return step


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_methods(cfg: BenchConfig, methods: tuple[str, ...] | None = None) -> dict[str, list[float]]:
    """Seconds per step of each method (default: all), interleaved rounds (order rotated each round)."""
    methods = methods or method_names()
    steps = {m: build_step(m, cfg) for m in methods}
    for _ in range(cfg.warmup):
        for m in methods:
            steps[m]()
    times: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(cfg.rounds):
        order = methods[r % len(methods):] + methods[: r % len(methods)]
        for m in order:
            _sync(cfg.device)
            start = time.perf_counter()
            steps[m]()
            _sync(cfg.device)
            times[m].append(time.perf_counter() - start)
            logger.info("round %d %s %.3fs", r, m, times[m][-1])
    return times


def _current_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated()
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_of(method: Any, cfg: BenchConfig, steps: int = 2) -> dict[str, int]:
    """Peak memory of ``method`` (called in a fresh process): the model and optimizer are built,
    the peak is reset, then ``steps`` training steps run; ``training_bytes`` is the peak minus
    the memory in use before the first step (activations, gradients, optimizer state)."""
    from losia_cl.trainer.memory import peak_memory_bytes, reset_peak_memory

    step = build_step(method, cfg)
    device = torch.device(cfg.device)
    baseline = _current_bytes(cfg.device)
    reset_peak_memory(device)
    for _ in range(steps):
        step()
    peak = peak_memory_bytes(device)
    return {"baseline_bytes": baseline, "peak_bytes": peak, "training_bytes": peak - baseline}


def measure_memory_in_subprocesses(cfg: BenchConfig, methods: tuple[str, ...] | None = None) -> dict[str, dict[str, int]]:
    out = {}
    methods = methods or method_names()
    for method in methods:
        args = [sys.executable, "-m", "losia_cl.bench", "--memory-child", method, "--config", json.dumps(asdict(cfg))]
        # A fixed mmap threshold makes glibc return every freed tensor to the OS at once, so the
        # resident-set peak tracks live tensors instead of the heap's high-water mark.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        result = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
        out[method] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def format_table(times: dict[str, list[float]], memory: dict[str, dict[str, int]] | None,
                 reference: str = "full") -> str:
    """Markdown table: median step, ratio to ``reference``'s median ("-" when it was not run), memory."""
    base = statistics.median(times[reference]) if reference in times else None
    lines = [f"| method | median step (s) | vs {reference} | peak memory (MiB) | training memory (MiB) |",
             "|---|---|---|---|---|"]
    for m, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{med / base:.3f}" if base else "-"
        mem = memory.get(m) if memory else None
        peak = f"{mem['peak_bytes'] / 2**20:.0f}" if mem else "-"
        extra = f"{mem['training_bytes'] / 2**20:.0f}" if mem else "-"
        lines.append(f"| {m} | {med:.3f} | {ratio} | {peak} | {extra} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options: one per :class:`BenchConfig` field, plus methods, memory and threads."""
    parser = argparse.ArgumentParser(prog="losia-cl bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    for f in fields(BenchConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help=f.metadata["help"])
    parser.add_argument("--methods", default=None,
                        help="Comma-separated methods to measure (default: every registered method).")
    parser.add_argument("--reference", default="full", help="The method the step times are divided by.")
    parser.add_argument("--no-memory", action="store_true", help="Skip the per-method memory subprocesses.")
    parser.add_argument("--threads", type=int, default=None,
                        help="Torch intra-op threads (default: torch's own choice).")
    parser.add_argument("--nproc", type=int, default=1,
                        help="Measure data-parallel steps in this many processes instead: bytes all-reduced per "
                             "step and step time of full, lora, losia, losia-pro (docs/distributed.md).")
    parser.add_argument("--json", action="store_true", help="With --nproc: also print the summary as one JSON line.")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        cfg = BenchConfig(**json.loads(args.config))
        sys.stdout.write(json.dumps(memory_of(args.memory_child, cfg)) + "\n")
        return 0
    cfg = BenchConfig(**{f.name: getattr(args, f.name) for f in fields(BenchConfig)})
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else method_names()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.nproc > 1:
        from losia_cl.distributed import bench as parallel_bench

        summary, report = parallel_bench.run(cfg, args.nproc, methods if args.methods else parallel_bench.METHODS,
                                             threads=args.threads)
        sys.stdout.write(report + "\n" + (json.dumps(summary) + "\n" if args.json else ""))
        return 0
    times = time_methods(cfg, methods)
    memory = None if args.no_memory else measure_memory_in_subprocesses(cfg, methods)
    sys.stdout.write(f"{cfg}\ntorch {torch.__version__}, {torch.get_num_threads()} threads\n")
    sys.stdout.write(format_table(times, memory, args.reference) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
