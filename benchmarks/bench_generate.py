"""Evaluation speed: one task per generation batch (the single-task path) vs all tasks of a stage together.

Both paths run on the same model in one process, in interleaved rounds (order alternated);
the table gives the median seconds per stage evaluation, prompt and new tokens per second, and
whether the two paths' predictions are identical (they must be).

    python benchmarks/bench_generate.py --model smollm2-135m --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    from losia_cl.models import load_model
    from losia_cl.streams import load_stream
    from losia_cl.evaluator import Evaluator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--stream", default="demo")
    parser.add_argument("--batch-sizes", default="32", help="comma-separated eval batch sizes of the stage path")
    parser.add_argument("--per-task-batch-size", type=int, default=32, help="batch size of the single-task path")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    tasks = list(load_stream(args.stream))
    paths = {"per task": [Evaluator(tokenizer, [t], batch_size=args.per_task_batch_size, max_length=args.max_length)
                          for t in tasks]}
    for size in (int(s) for s in args.batch_sizes.split(",")):
        paths[f"stage, batch {size}"] = [Evaluator(tokenizer, tasks, batch_size=size, max_length=args.max_length)]
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    tokens: dict[str, tuple[int, int]] = {}
    predictions: dict[str, list[list[str]]] = {}
    names = list(paths)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            out = [row for evaluator in paths[name] for row in evaluator.generate(model)]
            seconds[name].append(time.perf_counter() - start)
            predictions[name] = out
            stats = [e.last_stats for e in paths[name]]
            tokens[name] = (sum(s.prompt_tokens for s in stats), sum(s.new_tokens for s in stats))
            steps = sum(s.decode_steps for s in stats)
            sys.stderr.write(f"round {r} {name}: {seconds[name][-1]:.2f} s, {steps} decode steps\n")
    reference = predictions["per task"]
    lines = [f"{args.model}, stream {args.stream}, {sum(len(t.test) for t in tasks)} prompts, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads",
             "| path | median s | vs per task | prompt tokens/s | new tokens/s | identical predictions |",
             "|---|---|---|---|---|---|"]
    base = statistics.median(seconds["per task"])
    for name in names:
        med = statistics.median(seconds[name])
        prompt, new = tokens[name]
        lines.append(f"| {name} | {med:.2f} | {med / base:.3f} | {prompt / med:.0f} | {new / med:.1f} | "
                     f"{'yes' if predictions[name] == reference else 'NO'} |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if all(p == reference for p in predictions.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
