"""LoSiA + experience replay inside Avalanche, on the embedded demo stream, offline, on the CPU.

    python examples/avalanche_losia.py                  # tiny-llama, 2 tasks, under a minute
    python examples/avalanche_losia.py --model smollm2-135m --tasks category,position,check --lr 1e-3 --epochs 1
                                                        # the real model, slower

Builds an Avalanche benchmark from the stream (one experience per task), trains a
:class:`~losia_cl.avalanche.CausalLMStrategy` running LoSiA with Avalanche's ``ReplayPlugin``,
logs task scores, score forgetting / BWT / forward transfer, subnet overlap and weight stability
through Avalanche's text logger, and prints the score matrix (row 0: before training; row i:
after task i) with the continual-learning summary.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="tiny-llama", help="tiny-llama, smollm2-135m, a path or hub id")
    parser.add_argument("--tasks", default="check,position", help="demo tasks, comma-separated")
    parser.add_argument("--num-train", type=int, default=64, help="training examples per task")
    parser.add_argument("--num-test", type=int, default=8, help="test examples per task")
    parser.add_argument("--batch-size", type=int, default=4, help="training examples per step (plus as many replayed)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per task (64 steps per task by default)")
    parser.add_argument("--lr", type=float, default=5e-2, help="LoSiA learning rate (5e-2 suits tiny-llama)")
    parser.add_argument("--mem-size", type=int, default=16, help="replay memory (examples, balanced over tasks)")
    parser.add_argument("--max-length", type=int, default=128, help="token budget of prompt + answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and the subnets")
    parser.add_argument("--quiet", action="store_true", help="no per-experience metric log")
    args = parser.parse_args(argv)

    import torch
    from avalanche.logging import TextLogger
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

    from losia_cl.avalanche import (
        CausalLMStrategy,
        as_benchmark,
        score_bwt_metrics,
        score_forgetting_metrics,
        score_forward_transfer_metrics,
        stability_metrics,
        subnet_overlap_metrics,
        task_score_metrics,
    )
    from losia_cl.metrics import cl_metrics
    from losia_cl.models import load_model
    from losia_cl.streams import load_stream

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    model, tokenizer = load_model(args.model)
    stream = load_stream("demo", num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                         tasks=[t.strip() for t in args.tasks.split(",") if t.strip()])
    benchmark = as_benchmark(stream, tokenizer, max_length=args.max_length)

    evaluator = EvaluationPlugin(
        task_score_metrics(experience=True, stream=True),
        score_forgetting_metrics(stream=True),
        score_bwt_metrics(stream=True),
        score_forward_transfer_metrics(stream=True),
        subnet_overlap_metrics(),
        stability_metrics(),
        loggers=[] if args.quiet else [TextLogger(sys.stdout)],
    )
    strategy = CausalLMStrategy(
        model=model, tokenizer=tokenizer, method="losia", method_options={"lr": args.lr},
        train_mb_size=args.batch_size, train_epochs=args.epochs, eval_mb_size=32, seed=args.seed,
        plugins=[ReplayPlugin(mem_size=args.mem_size)], evaluator=evaluator,
        eval_every=0,  # evaluate the test stream before training and after every experience
    )
    strategy.train(benchmark.train_stream, eval_streams=[benchmark.test_stream])

    scores = strategy.score_matrix()
    summary = cl_metrics(scores)
    names = stream.task_names
    width = max(len(n) for n in ["after", "base", *names])
    print("\nscore matrix (LoSiA + replay, test split):")
    print(" ".join(["after".ljust(width), *(n.rjust(9) for n in names)]))
    for label, row in zip(["base", *names], scores):
        print(" ".join([label.ljust(width), *(f"{v:9.3f}" for v in row)]))
    bwt = "n/a" if summary.bwt is None else f"{summary.bwt:+.3f}"
    print(f"\naverage performance {summary.average_performance:.3f}   BWT {bwt}   "
          f"losses per task: {', '.join(f'{k} {v[0]:.2f}->{v[-1]:.2f}' for k, v in strategy.losses.items())}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
