"""Training-step benchmark: the registered methods (full fine-tuning, LoRA, LoSiA, ...) measured side by side.

Model: a random Llama of the given sizes, or (``--model``) any model ``losia-cl run`` accepts,
trained on a fixed random batch with the language-model loss over every token.

Speed: every method (default: every registered method, plus plain peft LoRA at the ``lora``
method's rank as a sanity row) is built once in one process; then rounds run the methods in turn
(order rotated each round), one timed sample each: ``period`` consecutive steps, so LoSiA's
samples include one re-localization and its importance recording.  The median seconds per step
are reported with tokens/s and the ratio to full fine-tuning and to LoRA.
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

from losia_cl.errors import ConfigError
from losia_cl.fields import documented
from losia_cl.help_formatter import CommandParser

logger = logging.getLogger(__name__)


def method_names() -> tuple[str, ...]:
    """The methods benchmarked by default: every registered one."""
    from losia_cl.methods import method_names as registered

    return tuple(registered())


#: A bench-only baseline: plain peft LoRA at the ``lora`` method's rank and targets, torch AdamW,
#: clipping over the adapter weights, no scheduler and no shared training step (what a plain
#: training loop pays).  It checks that the ``lora`` method pays for nothing but its own work.
PLAIN_LORA = "peft-lora"
#: Methods the ratio columns divide by, when they were run.
REFERENCES = ("full", "lora")


@dataclass(frozen=True)
class BenchConfig:
    """Model and batch of the benchmark (defaults: a mid-sized random Llama that 2 CPU cores time in minutes).

    ``rank_factor`` is given to every method that has a ``rank_factor`` option (LoSiA's p; the
    adapter methods match their rank to LoSiA's trainable-parameter count at that p), ``period``
    to every method that has a ``period`` option (LoSiA's slot length T).
    """

    model: str = documented("Model to train: empty for the random Llama of the sizes below, else any model "
                            "`losia-cl run` accepts (smollm2-135m, tiny-llama, a Hugging Face id or a path).", "")
    hidden_size: int = documented("Hidden size of the random Llama (without --model).", 768)
    intermediate_size: int = documented("Intermediate (MLP) size of the random Llama.", 2048)
    num_layers: int = documented("Decoder layers of the random Llama.", 8)
    vocab_size: int = documented("Vocabulary size of the random Llama.", 8192)
    batch_size: int = documented("Sequences per training step.", 4)
    seq_len: int = documented("Tokens per sequence.", 256)
    rank_factor: float = documented("LoSiA's rank factor p; LoRA's rank is matched to LoSiA's trainable "
                                    "parameters at this p.", 1 / 8)
    period: int = documented("LoSiA's slot length T; every timed sample is T consecutive steps, so it holds one "
                             "re-localization and T steps of importance recording.", 4)
    dtype: str = documented("Weight dtype: float32 or bfloat16.", "float32")
    rounds: int = documented("Timed rounds; each times one sample of every method, the order rotated.", 5)
    warmup: int = documented("Untimed samples of every method before the rounds.", 1)
    device: str = documented("Torch device (cpu, cuda, cuda:N).", "cpu")
    seed: int = documented("Seed of the weights and of the random batch.", 0)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "intermediate_size", "num_layers", "vocab_size", "batch_size", "seq_len",
                     "period", "rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"bench: {name} = {value!r} is invalid: it must be an integer >= 1")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"bench: warmup = {self.warmup!r} is invalid: it must be an integer >= 0")
        if not 0 < self.rank_factor <= 1:
            raise ConfigError(f"bench: rank_factor = {self.rank_factor!r} is invalid: it must be in (0, 1]")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"bench: dtype = {self.dtype!r} is invalid: it must be float32 or bfloat16")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


def build_model(cfg: BenchConfig) -> torch.nn.Module:
    """``cfg.model`` loaded as ``losia-cl run`` loads it, or the random Llama of ``cfg``'s sizes."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.model:
        from losia_cl.models import load_model

        torch.manual_seed(cfg.seed)
        return load_model(cfg.model, dtype=dtype, device=cfg.device, seed=cfg.seed)[0]
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=max(1, cfg.hidden_size // 64),
        num_key_value_heads=max(1, cfg.hidden_size // 64), max_position_embeddings=max(cfg.seq_len, 64),
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config).to(device=cfg.device, dtype=dtype)


def _lm_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss


def _random_batch(model: nn.Module, cfg: BenchConfig) -> Tensor:
    vocab = model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(cfg.seed)
    return torch.randint(0, vocab, (cfg.batch_size, cfg.seq_len), generator=generator).to(cfg.device)


def create_bench_method(name: str, cfg: BenchConfig) -> Any:
    """The method registered as ``name`` with lr 1e-5 and, where it has them, ``rank_factor`` and ``period``.

    The LoSiA family starts from random subnets, so that the timed steps are steady-state ones (one
    layer records importance) rather than the first slot's scoring, in which every layer records.
    """
    from losia_cl.methods import METHODS, create_method

    options: dict[str, Any] = {"lr": 1e-5}
    names = {f.name for f in fields(METHODS.get(name))}
    if "rank_factor" in names:
        options["rank_factor"] = cfg.rank_factor
    if "period" in names:
        options["period"] = cfg.period
    if "losia_options" in names:
        options["losia_options"] = {"init": "random"}
        if name == "losia":  # LoSiA-Pro is the default (losia-pro an alias): the row "losia" times the plain path
            options["losia_options"]["pro"] = False
    return create_method(name, **options)


@dataclass
class Trainee:
    """One method ready to train on the benchmark's batch."""

    step: Callable[[], None]  #: one training step
    model: nn.Module
    optimizer: torch.optim.Optimizer
    trainable_parameters: int  #: entries the optimizer updates per step
    scheduler: Any = None

    def optimizer_state_bytes(self) -> int:
        """Bytes of every tensor the optimizer holds in its state (moments, subnets, importance EMAs)."""
        seen: set[int] = set()
        total = 0
        for entries in self.optimizer.state.values():
            for value in entries.values():
                if torch.is_tensor(value) and id(value) not in seen:
                    seen.add(id(value))
                    total += value.numel() * value.element_size()
        return total


def build_trainee(method: Any, cfg: BenchConfig) -> Trainee:
    """``method`` (a registered name, :data:`PLAIN_LORA`, or a method object) on a fresh model and fixed random batch.

    A method's step is the shared :func:`~losia_cl.trainer.step.train_step` with the language-model
    loss over every token and gradient clipping at 1.0.
    """
    from losia_cl.methods import TaskContext
    from losia_cl.trainer.step import train_step

    if method == PLAIN_LORA:
        return _plain_peft_lora(cfg)
    trainer_method = create_bench_method(method, cfg) if isinstance(method, str) else method
    context = TaskContext(task_index=0, num_tasks=1, num_training_steps=1000, seed=cfg.seed)
    model = trainer_method.prepare(build_model(cfg), context)
    optimizer, scheduler = trainer_method.build_optimizer(model, context)
    ids = _random_batch(model, cfg)

    def step() -> None:
        train_step(model, optimizer, scheduler, [{"input_ids": ids}], loss_divisor=1, max_grad_norm=1.0,
                   loss_fn=_lm_loss)

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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


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
        _sync(cfg.device)
        start = time.perf_counter()
        for _ in range(cfg.period):
            trainees[m].step()
        _sync(cfg.device)
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
                             "added when lora is measured (default: every registered method).")
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
