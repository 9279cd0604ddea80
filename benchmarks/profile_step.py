"""Where a training step's time goes: phases timed over a few steps, then the busiest operators.

The step is the one ``losia-cl bench`` times (the shared training step with the language-model loss
over every token), split into its phases: forward + loss, backward, clipping, optimizer step,
scheduler step, zero_grad.  Each phase is the median over ``--steps`` steps (one LoSiA slot of
``--period`` steps covers a re-localization); then ``torch.profiler`` records the same steps and the
operators with the largest self CPU time inside ``optimizer.step`` and in the whole step are listed.

    python benchmarks/profile_step.py --model smollm2-135m --batch-size 8 --seq-len 128 --method losia --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict

import torch


def main(argv: list[str] | None = None) -> int:
    from losia_cl.bench import BenchConfig, build_trainee
    from losia_cl.bench_setup import lm_loss
    from losia_cl.step import clip_gradients

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--method", default="losia")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--period", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="timed steps (after one untimed slot)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rows", type=int, default=15, help="operators listed per table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(model=args.model, batch_size=args.batch_size, seq_len=args.seq_len, period=args.period,
                      dtype=args.dtype)
    trainee = build_trainee(args.method, cfg)
    model, optimizer = trainee.model, trainee.optimizer
    scheduler = trainee.scheduler
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (cfg.batch_size, cfg.seq_len), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids}

    def step(phases: dict[str, list[float]] | None) -> None:
        start = time.perf_counter()
        loss = lm_loss(model, batch)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        clip_gradients(model, optimizer, 1.0)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if scheduler is not None:
            scheduler.step()
        t5 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        t6 = time.perf_counter()
        if phases is not None:
            for name, a, b in (("forward + loss", start, t1), ("backward", t1, t2), ("clip", t2, t3),
                               ("optimizer.step", t3, t4), ("scheduler.step", t4, t5), ("zero_grad", t5, t6),
                               ("whole step", start, t6)):
                phases[name].append(b - a)

    for _ in range(cfg.period):
        step(None)
    phases: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.steps):
        step(phases)
    whole = statistics.median(phases["whole step"])
    out = [f"{args.method} on {args.model}, batch {cfg.batch_size} x {cfg.seq_len}, {cfg.dtype}, T = {cfg.period}, "
           f"torch {torch.__version__}, {torch.get_num_threads()} threads",
           "| phase | median s | share of the step |", "|---|---|---|"]
    for name, values in phases.items():
        out.append(f"| {name} | {statistics.median(values):.4f} | {statistics.median(values) / whole:.1%} |")

    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            loss = lm_loss(model, batch)
            loss.backward()
            clip_gradients(model, optimizer, 1.0)
            with record_function("OPTIMIZER_STEP"):
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    events = prof.events()
    inside = [e for e in events if e.name == "OPTIMIZER_STEP"]
    spans = [(e.time_range.start, e.time_range.end) for e in inside]
    per_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.name.startswith("aten::") and any(a <= e.time_range.start and e.time_range.end <= b for a, b in spans):
            per_op[e.name][0] += e.self_cpu_time_total
            per_op[e.name][1] += 1
    total_opt = sum(e.cpu_time_total for e in inside)
    out += ["", f"operators inside optimizer.step ({args.steps} steps, {total_opt / 1e6:.3f} s in all, "
                f"{sum(c for _, c in per_op.values()) / args.steps:.0f} operator calls per step):",
            "| operator | self CPU s | calls per step |", "|---|---|---|"]
    for name, (cpu, calls) in sorted(per_op.items(), key=lambda kv: -kv[1][0])[: args.rows]:
        out.append(f"| {name} | {cpu / 1e6:.3f} | {calls / args.steps:.0f} |")
    out += ["", "operators of the whole step:", "| operator | self CPU s | calls per step |", "|---|---|---|"]
    for avg in sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)[: args.rows]:
        out.append(f"| {avg.key} | {avg.self_cpu_time_total / 1e6:.3f} | {avg.count / args.steps:.0f} |")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
