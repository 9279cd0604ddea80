"""Benchmark: how far the subnets of the local-importance remedy are from the exact data-parallel ones.

Run:  python benchmarks/bench_local_importance.py [--nproc 2] [--model smollm2-135m] [--period 4] [--layers 8]

Exact data parallelism (what ``losia-cl run`` under torchrun does) all-reduces the recording matrix's
full gradient at every step of its slot, so importance is scored on the global gradient.  The
remedy keeps the importance and uncertainty EMAs on each rank from its *local* gradient (scaled by
the number of ranks, an estimate of the global one), averages the EMAs across ranks once, just
before the slot's last step, and updates them with that step's global gradient, so all ranks still
choose the same subnet.  This script trains LoSiA-Pro data-parallel (exact) on a stream's first task
and, alongside, keeps the remedy's EMAs ("shadow" EMAs that influence nothing).  At every
re-localization it compares the remedy's subnet with the exact one: the fraction of rows and of
columns in common and the Jaccard index of the two blocks of entries; a random subnet of the same
size shares a fraction p of rows and of columns on average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402


def _rank(ctx, args: dict) -> list[dict]:
    from functools import partial

    from losia_cl.distributed.reduce import GradientReducer, losia_blocks
    from losia_cl.distributed.sharding import answer_tokens, piece_loss, shard_step
    from losia_cl.methods import TaskContext, create_method
    from losia_cl.models import load_model
    from losia_cl.optim.localize import localize, sensitivity, update_importance_emas
    from losia_cl.streams import load_stream
    from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
    from losia_cl.trainer.plan import BatchPlan
    from losia_cl.step import apply_update, backward_micro_batch

    torch.manual_seed(args["seed"])
    model, tokenizer = load_model(args["model"], dtype=torch.float32, device=torch.device("cpu"), seed=args["seed"])
    task = load_stream(args["stream"]).tasks[0]
    features = encode_examples(tokenizer, task.train, max_length=args["max_length"])
    steps = args["period"] * args["layers"]
    plan = BatchPlan(batch_size=args["batch_size"], epochs=100, seed=args["seed"]).steps(len(features), 0)[:steps]
    method = create_method("losia-pro", lr=args["lr"], rank_factor=args["rank_factor"], period=args["period"],
                           losia_options={"init": "random"})
    context = TaskContext(task_index=0, num_tasks=1, num_training_steps=steps, seed=args["seed"])
    model = method.prepare(model, context)
    optimizer, scheduler = method.build_optimizer(model, context)
    config = optimizer.config
    reducer = GradientReducer(ctx)
    pad = pad_token_id(tokenizer)
    shadow: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    comparisons = []

    def oriented(tensor, group):
        return tensor.t() if group.get("transposed") else tensor

    for step, micro_batches in enumerate(plan):
        for piece in shard_step(micro_batches, ctx.rank, ctx.world_size):
            tokens = 0 if piece.whole else sum(answer_tokens(features[i]) for i in micro_batches[piece.micro])
            batch = collate_for_training([features[i] for i in piece.indices], pad_token_id=pad)
            backward_micro_batch(model, batch, 1, partial(piece_loss, piece=piece, num_micro=len(micro_batches),
                                                          micro_tokens=tokens))
        recording = [g for g in optimizer.param_groups
                     if g["losia"] and optimizer.schedule.records(g["slot"], optimizer.global_step)]
        final = {g["name"] for g in recording if optimizer.schedule.relocalizes(g["slot"], optimizer.global_step + 1)}

        def shadow_update(group, grad):
            weight = oriented(group["params"][0], group)
            score = sensitivity(weight, oriented(grad, group), config.importance)
            imp, unc = shadow.setdefault(group["name"], (torch.zeros_like(score), torch.zeros_like(score)))
            update_importance_emas(imp, unc, score, config.beta_importance, config.beta_uncertainty)

        def reduce(module):
            for group in recording:  # the remedy's EMAs: local gradient x N inside the slot
                if group["name"] not in final:
                    shadow_update(group, group["params"][0].grad * ctx.world_size)
                else:  # slot end: average the EMAs over the ranks, then the global gradient below
                    for ema in shadow.get(group["name"], ()):
                        ctx.all_reduce_(ema).div_(ctx.world_size)
            reducer(module.parameters(), losia_blocks(optimizer))
            for group in recording:
                if group["name"] in final:
                    shadow_update(group, group["params"][0].grad)

        apply_update(model, optimizer, scheduler, max_grad_norm=1.0, reduce_gradients=reduce)
        for group in recording:
            if group["name"] not in final:
                continue
            imp, unc = shadow.pop(group["name"])
            rows, cols, _ = localize(imp * unc, group["num_rows"], group["num_cols"])
            state = optimizer.state[group["params"][0]]
            common_rows = len(set(rows.tolist()) & set(state["rows"].tolist()))
            common_cols = len(set(cols.tolist()) & set(state["cols"].tolist()))
            inter = common_rows * common_cols
            size = group["num_rows"] * group["num_cols"]
            comparisons.append({"step": step + 1, "matrix": group["name"], "rows": common_rows / group["num_rows"],
                                "cols": common_cols / group["num_cols"], "jaccard": inter / (2 * size - inter)})
    return comparisons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--stream", default="demo")
    parser.add_argument("--period", type=int, default=4, help="LoSiA's T (slot length in steps)")
    parser.add_argument("--layers", type=int, default=8, help="train until this many layers re-localized once")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch (split across the processes)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rank-factor", type=float, default=1 / 8)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print every comparison as JSON")
    args = parser.parse_args()
    from losia_cl.distributed import spawn

    ranks = spawn(_rank, args.nproc, vars(args))
    assert all(r == ranks[0] for r in ranks), "the remedy's subnets differ across ranks"
    rows = ranks[0]
    if args.json:
        print(json.dumps(rows, indent=1))
    print(f"{args.model}, {args.stream}, {args.nproc} processes, T={args.period}, p={args.rank_factor:.4g}, "
          f"global batch {args.batch_size}: {len(rows)} re-localized matrices")
    for key in ("rows", "cols", "jaccard"):
        values = [r[key] for r in rows]
        print(f"  {key:8s} in common: median {statistics.median(values):.3f}, mean {statistics.mean(values):.3f}, "
              f"min {min(values):.3f}")
    print(f"  chance (random subnet): rows/cols {args.rank_factor:.3f}, "
          f"jaccard {args.rank_factor ** 2 / (2 - args.rank_factor ** 2):.4f}")


if __name__ == "__main__":
    main()
