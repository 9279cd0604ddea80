"""Benchmark: weight dimensional stability on SmolLM2-135M's target matrices and on one 7B-sized matrix.

Run:  python benchmarks/bench_stability.py [--threads 2] [--skip-large]

Prints wall time and process CPU time per phase.  On a shared machine MKL's multi-threaded
eigensolvers slow down badly when the cores are oversubscribed; the load average is printed so
the figures can be judged.

Case 1: all 210 target matrices of SmolLM2-135M (30 layers x q 576x576, k 192x576, v 192x576,
o 576x576, gate 1536x576, up 1536x576, down 576x1536), random weights, one base snapshot and
one stage (base + a small low-rank-plus-noise perturbation), with ΔW metrics.  Target <= 60 s.
Case 2: one 4096 x 11008 matrix (randomized SVD path), base snapshot + one stage with ΔW.
Target <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# Idle OpenMP threads sleep instead of spinning: on a machine shared with other jobs, spinning
# threads of MKL's eigensolvers slow each other down several-fold.  Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from losia_cl.metrics import StabilityConfig, StabilityTracker  # noqa: E402

SMOLLM2_135M = {
    "self_attn.q_proj": (576, 576),
    "self_attn.k_proj": (192, 576),
    "self_attn.v_proj": (192, 576),
    "self_attn.o_proj": (576, 576),
    "mlp.gate_proj": (1536, 576),
    "mlp.up_proj": (1536, 576),
    "mlp.down_proj": (576, 1536),
}


def perturb(w: torch.Tensor, gen: torch.Generator, rank: int = 8, scale: float = 0.05) -> torch.Tensor:
    """``w`` plus a rank-``rank`` update and a little noise, about ``scale`` of ``‖w‖_F`` in norm."""
    d_out, d_in = w.shape
    low = torch.randn(d_out, rank, generator=gen) @ torch.randn(rank, d_in, generator=gen) / rank**0.5
    update = low + 0.3 * torch.randn(d_out, d_in, generator=gen)
    return w + scale * update * (w.norm() / update.norm())


def run(shapes: dict[str, tuple[int, int]], config: StabilityConfig) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    base = {n: torch.randn(*s, generator=gen) / s[1] ** 0.5 for n, s in shapes.items()}
    stage = {n: perturb(w, gen) for n, w in base.items()}
    c0, t0 = time.process_time(), time.perf_counter()
    tracker = StabilityTracker(config, base=base)
    t1 = time.perf_counter()
    results = tracker.measure("stage-1", stage, base=base)
    t2 = time.perf_counter()
    summary = tracker.summary(per_matrix=False)
    json.dumps(tracker.to_dict())
    c3, t3 = time.process_time(), time.perf_counter()
    mean = summary["stages"][0]["mean"]
    return {
        "matrices": len(results),
        "approximate": sum(r["approximate"] for r in results.values()),
        "base_snapshot_s": t1 - t0,
        "measure_s": t2 - t1,
        "summary_and_state_s": t3 - t2,
        "total_s": t3 - t0,
        "cpu_s": c3 - c0,
        "mean_subspace_left_base": mean["subspace_left_base"],
        "mean_spectral_drift_base": mean["spectral_drift_base"],
        "mean_effective_rank": mean["effective_rank"],
        "mean_delta_effective_rank": mean["delta_effective_rank"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = StabilityConfig(k=args.k)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}, "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"config: {config}")
    shapes = {
        f"model.layers.{layer}.{name}": shape for layer in range(30) for name, shape in SMOLLM2_135M.items()
    }
    small = run(shapes, config)
    print(f"SmolLM2-135M, {small['matrices']} matrices: " + json.dumps({k: round(v, 4) for k, v in small.items()}))
    print(f"  target <= 60 s: {'OK' if small['total_s'] <= 60 else 'MISSED'} ({small['total_s']:.1f} s)")
    if not args.skip_large:
        large = run({"model.layers.0.mlp.up_proj": (4096, 11008)}, config)
        print("4096 x 11008: " + json.dumps({k: round(v, 4) for k, v in large.items()}))
        print(f"  target <= 10 s: {'OK' if large['total_s'] <= 10 else 'MISSED'} ({large['total_s']:.1f} s)")
    print(f"load average at end {os.getloadavg()[0]:.1f}; with other processes running, wall time exceeds "
          "cpu_s / threads (cpu_s with --threads 1 is the idle single-core wall time)")


if __name__ == "__main__":
    main()
