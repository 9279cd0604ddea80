"""Training-step benchmark: the registered methods (full fine-tuning, LoRA, LoSiA, ...) measured side by side.

Model: a random Llama of the given sizes, or (``--model``) any model ``losia-cl run`` accepts,
trained on a fixed random batch with the language-model loss over every token.

Speed: every method (default: every registered method whose optional package is installed, plus plain
peft LoRA at the ``lora`` method's rank as a sanity row) is built once in one process; then rounds run the
methods in turn (order rotated each round), one timed sample each: ``period`` consecutive steps, so LoSiA's
samples include one re-localization and its importance recording (GaLore's one projector update).  The
median seconds per step are reported with tokens/s and the ratio to full fine-tuning and to LoRA.
Memory: each method runs its warm-up and then ``period + 1`` steps in a fresh subprocess and reports
the peak resident memory of those steps (CPU, with glibc's mmap threshold fixed at 64 KiB so that freed tensors leave the resident
set) or ``torch.cuda.max_memory_allocated`` (CUDA), minus the memory in use once model and
optimizer are built, i.e. what training adds on top of the weights; the optimizer-state column
counts the tensors the optimizer keeps between steps.

Run ``losia-cl bench`` or ``python -m losia_cl.bench`` (``--help`` for the options).
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

from losia_cl.bench_setup import BenchConfig, build_model, create_bench_method, lm_loss, sync_device
from losia_cl.help_formatter import CommandParser

logger = logging.getLogger(__name__)


def method_names() -> tuple[str, ...]:
    """The methods benchmarked by default: every registered one that can be built here.

    A method class may say why it cannot (``unavailable()``, e.g. its optional package is missing):
    it is left out with a log line, and still benchmarked when named with ``--methods``.
    """
    from losia_cl.methods import METHODS
    from losia_cl.methods import method_names as registered

    out = []
    for name in registered():
        reason = getattr(METHODS.get(name), "unavailable", lambda: None)()
        if reason:
            logger.info("bench: %s left out: %s", name, reason)
        else:
            out.append(name)
    return tuple(out)


#: A bench-only baseline: plain peft LoRA at the ``lora`` method's rank and targets, torch AdamW,
#: clipping over the adapter weights, no scheduler and no shared training step (what a plain
#: training loop pays).  It checks that the ``lora`` method pays for nothing but its own work.
PLAIN_LORA = "peft-lora"
#: Methods the ratio columns divide by, when they were run.
REFERENCES = ("full", "lora")


def _random_batch(model: nn.Module, cfg: BenchConfig) -> Tensor:
    vocab = model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(cfg.seed)
    return torch.randint(0, vocab, (cfg.batch_size, cfg.seq_len), generator=generator).to(cfg.device)


@dataclass
class Trainee:
    """One method ready to train on the benchmark's batch."""

    step: Callable[[], None]  #: one training step
    model: nn.Module
    optimizer: torch.optim.Optimizer
    trainable_parameters: int  #: entries the optimizer updates per step
    scheduler: Any = None

    def optimizer_state_bytes(self) -> int:
        """Bytes of every tensor in the optimizer's state dict (moments, subnets, importance EMAs, projectors).

        The state dict is what a checkpoint saves: the live state as tensors (GaLore's projector objects
        become their matrices there).
        """
        seen: set[int] = set()
        total = 0

        def add(value: Any) -> None:
            nonlocal total
            if torch.is_tensor(value):
                if id(value) not in seen:
                    seen.add(id(value))
                    total += value.numel() * value.element_size()
            elif isinstance(value, (list, tuple)):
                for item in value:
                    add(item)
            elif isinstance(value, dict):
                for item in value.values():
                    add(item)

        add(self.optimizer.state_dict()["state"])
        return total


def build_trainee(method: Any, cfg: BenchConfig) -> Trainee:
    """``method`` (a registered name, :data:`PLAIN_LORA`, or a method object) on a fresh model and fixed random batch.

    A method's step is the shared :func:`~losia_cl.step.train_step` with the language-model
    loss over every token and gradient clipping at 1.0.
    """
    from losia_cl.methods import TaskContext
    from losia_cl.step import train_step

    if method == PLAIN_LORA:
        return _plain_peft_lora(cfg)
    trainer_method = create_bench_method(method, cfg) if isinstance(method, str) else method
    context = TaskContext(task_index=0, num_tasks=1, num_training_steps=1000, seed=cfg.seed)
    model = trainer_method.prepare(build_model(cfg), context)
    optimizer, scheduler = trainer_method.build_optimizer(model, context)
    ids = _random_batch(model, cfg)

    def step() -> None:
        train_step(model, optimizer, scheduler, [{"input_ids": ids}], loss_divisor=1, max_grad_norm=1.0,
                   loss_fn=lm_loss)

    return Trainee(step, model, optimizer, trainer_method.trainable_parameters(model, optimizer), scheduler)


def _plain_peft_lora(cfg: BenchConfig) -> Trainee:
    from peft import LoraConfig, get_peft_model

    from losia_cl.optim.targets import find_targets

    lora = create_bench_method("lora", cfg)
    model = build_model(cfg)
    rank = lora.resolved_rank(model)
    targets = [t.name for t in find_targets(model, cfg.rank_factor)]
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, lora_dropout=0.0))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    ids = _random_batch(model, cfg)

    def step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return Trainee(step, model, optimizer, sum(p.numel() for p in params))


def build_step(method: Any, cfg: BenchConfig) -> Callable[[], None]:
    """A closure running one training step of ``method`` (see :func:`build_trainee`)."""
    return build_trainee(method, cfg).step


@dataclass
class Timing:
    """What :func:`time_methods` measured for one method."""

    seconds: list[float]  #: seconds per step, one value per round (the mean over the round's ``period`` steps)
    optimizer_state_bytes: int
    trainable_parameters: int


def time_methods(cfg: BenchConfig, methods: tuple[str, ...] | None = None) -> dict[str, Timing]:
    """Seconds per step of each method (default: all), interleaved rounds (order rotated each round).

    A sample is ``cfg.period`` consecutive steps of one method, so LoSiA's samples each hold one
    re-localization and ``period`` steps with one layer recording importance.
    """
    methods = methods or method_names()
    trainees = {m: build_trainee(m, cfg) for m in methods}

    def sample(m: str) -> float:
        sync_device(cfg.device)
        start = time.perf_counter()
        for _ in range(cfg.period):
            trainees[m].step()
        sync_device(cfg.device)
        return (time.perf_counter() - start) / cfg.period

    for _ in range(cfg.warmup):
        for m in methods:
            sample(m)
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(cfg.rounds):
        order = methods[r % len(methods):] + methods[: r % len(methods)]
        for m in order:
            seconds[m].append(sample(m))
            logger.info("round %d %s %.3fs per step", r, m, seconds[m][-1])
    return {m: Timing(seconds[m], trainees[m].optimizer_state_bytes(), trainees[m].trainable_parameters)
            for m in methods}


def _current_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated()
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_of(method: Any, cfg: BenchConfig, steps: int | None = None) -> dict[str, int]:
    """Peak memory of ``method`` (called in a fresh process) in the steady state.

    The model and optimizer are built and the memory in use is taken as the baseline; the
    warm-up samples run (``cfg.warmup`` x ``cfg.period`` steps: optimizer state allocated, LoSiA's
    first scoring slot behind); the peak is reset and ``steps`` more steps run (default
    ``cfg.period + 1``: one re-localization included).  ``training_bytes`` is that peak minus the
    baseline: activations, gradients and optimizer state.
    """
    from losia_cl.trainer.memory import peak_memory_bytes, reset_peak_memory

    step = build_step(method, cfg)
    device = torch.device(cfg.device)
    baseline = _current_bytes(cfg.device)
    for _ in range(cfg.warmup * cfg.period):
        step()
    reset_peak_memory(device)
    for _ in range(cfg.period + 1 if steps is None else steps):
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


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f}"


def format_table(timings: Mapping[str, Timing], memory: Mapping[str, Mapping[str, int]] | None,
                 cfg: BenchConfig, references: tuple[str, ...] = REFERENCES) -> str:
    """Markdown table: median step, tokens/s, ratio to each reference that was run ("-" if not), memory."""
    medians = {m: statistics.median(t.seconds) for m, t in timings.items()}
    refs = [r for r in references if r in medians] or list(references[:1])
    lines = ["| method | median step (s) | tokens/s | " + " | ".join(f"vs {r}" for r in refs)
             + " | training memory (MiB) | peak memory (MiB) | optimizer state (MiB) | trainable parameters |",
             "|---|---|---|" + "---|" * len(refs) + "---|---|---|---|"]
    for m, timing in timings.items():
        med = medians[m]
        ratios = [f"{med / medians[r]:.3f}" if r in medians else "-" for r in refs]
        mem = memory.get(m) if memory else None
        lines.append(
            f"| {m} | {med:.3f} | {cfg.tokens_per_step / med:.0f} | " + " | ".join(ratios)
            + f" | {_mib(mem['training_bytes']) if mem else '-'} | {_mib(mem['peak_bytes']) if mem else '-'}"
            f" | {_mib(timing.optimizer_state_bytes)} | {timing.trainable_parameters:,} |"
        )
    return "\n".join(lines)


def describe_setting(cfg: BenchConfig) -> str:
    """One line naming the model, batch, dtype, threads and the machine's load (for reading the figures)."""
    model = cfg.model or (f"random Llama hidden {cfg.hidden_size}, intermediate {cfg.intermediate_size}, "
                          f"{cfg.num_layers} layers, vocabulary {cfg.vocab_size}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{model}; batch {cfg.batch_size} x {cfg.seq_len} tokens; p = {cfg.rank_factor:g}; T = {cfg.period}; "
            f"{cfg.dtype} on {cfg.device}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"load average {load}")


def _at_least_one(text: str) -> int:
    """An integer >= 1 (a thread or process count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is invalid: it must be an integer >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options: one per :class:`BenchConfig` field, plus methods, memory and threads."""
    parser = CommandParser(prog="losia-cl bench", description=__doc__.split("\n\n")[0])
    for f in fields(BenchConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help=f.metadata["help"])
    parser.add_argument("--methods", default=None,
                        help=f"Comma-separated methods to measure; {PLAIN_LORA} is plain peft LoRA at lora's rank, "
                             "added when lora is measured (default: every registered method whose optional package "
                             "is installed).")
    parser.add_argument("--references", default=",".join(REFERENCES),
                        help="Comma-separated methods the step times are divided by (a column each).")
    parser.add_argument("--no-memory", action="store_true", help="Skip the per-method memory subprocesses.")
    parser.add_argument("--threads", type=_at_least_one, default=None,
                        help="Torch intra-op threads, >= 1 (default: torch's own choice).")
    parser.add_argument("--nproc", type=_at_least_one, default=1,
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
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    else:
        methods = method_names()
        methods += (PLAIN_LORA,) if "lora" in methods else ()
    references = tuple(r.strip() for r in args.references.split(",") if r.strip())
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.nproc > 1:
        from losia_cl.distributed import bench as parallel_bench

        summary, report = parallel_bench.run(cfg, args.nproc, methods if args.methods else parallel_bench.METHODS,
                                             threads=args.threads)
        sys.stdout.write(report + "\n" + (json.dumps(summary) + "\n" if args.json else ""))
        return 0
    timings = time_methods(cfg, methods)
    memory = None if args.no_memory else measure_memory_in_subprocesses(cfg, methods)
    sys.stdout.write(describe_setting(cfg) + "\n")
    sys.stdout.write(format_table(timings, memory, cfg, references) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
