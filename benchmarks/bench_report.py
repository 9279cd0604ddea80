"""Benchmark: `losia-cl report` on a long stream (a synthetic run folder with many tasks).

Run:  python benchmarks/bench_report.py [--tasks 300] [--methods losia,lora,full] [--layers 2] [--keep DIR]

Writes a run folder the way ``losia-cl run`` does (run.json and, per method, results.json with the score
matrix, the metrics, a SubnetOverlapTracker summary for LoSiA-family methods and a StabilityTracker summary,
scores.csv), then runs ``losia-cl report`` on it in a fresh process and prints that process's wall time and
CPU time and peak resident memory (ru_maxrss of the child), with the size of the written files.  Target for 300 tasks:
<= 60 s and <= 2 GB.  Generating the folder is not timed.

The overlap summary keeps ``per_matrix`` (as the trainer writes it) for ``--layers`` x 2 target matrices;
results.json grows as matrices x tasks^2, so the folder for many matrices is large.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from losia_cl.metrics import StabilityConfig, StabilityTracker, SubnetOverlapTracker, cl_metrics

LOSIA_FAMILY = ("losia", "losia-pro")
SHAPES = {"self_attn.q_proj": (32, 24), "mlp.up_proj": (48, 32)}


def scores(rng: np.random.Generator, num_tasks: int, forget: float) -> list[list[float]]:
    """``(T+1) × T`` scores: a low base row, a high diagonal, decay below it, a little transfer above."""
    t = num_tasks
    base = rng.uniform(0.05, 0.25, t)
    learned = np.clip(0.82 + rng.uniform(-0.08, 0.08, t), 0, 1)
    stage = np.arange(t + 1)[:, None]
    task = np.arange(1, t + 1)[None, :]
    age = np.maximum(stage - task, 0)
    below = learned[None, :] * np.exp(-forget * age) + rng.uniform(-0.02, 0.02, (t + 1, t))
    above = base[None, :] + rng.uniform(0.0, 0.1, (t + 1, t))
    s = np.where(stage >= task, below, above)
    s[0] = base
    return np.round(np.clip(s, 0.0, 1.0), 4).tolist()


def overlap(rng: np.random.Generator, tasks: list[str], layers: int) -> dict[str, Any]:
    tracker = SubnetOverlapTracker()
    names = {f"model.layers.{layer}.{kind}": shape for layer in range(layers) for kind, shape in SHAPES.items()}
    index = {f"model.layers.{layer}.{kind}": layer for layer in range(layers) for kind in SHAPES}
    for task in tasks:
        for _ in range(2):
            blocks = {name: (rng.choice(d_out, d_out // 4, replace=False), rng.choice(d_in, d_in // 4, replace=False))
                      for name, (d_out, d_in) in names.items()}
            tracker.record(task, blocks, shapes=names, layers=index)
    return tracker.summary()


def stability(rng: np.random.Generator, method: str, tasks: list[str], layers: int) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    base = {f"model.layers.{layer}.{kind}": torch.randn(*shape, generator=gen) / shape[1] ** 0.5
            for layer in range(layers) for kind, shape in SHAPES.items()}
    index = {f"model.layers.{layer}.{kind}": layer for layer in range(layers) for kind in SHAPES}
    tracker = StabilityTracker(StabilityConfig(k=4), base=base, layers=index)
    weights = {n: w.clone() for n, w in base.items()}
    for task in tasks:
        for w in weights.values():
            scale = 0.02 if method == "full" else 0.05
            w += scale * torch.randn(w.shape[0], 2, generator=gen) @ torch.randn(2, w.shape[1], generator=gen)
        tracker.measure(task, weights, base=base)
    return tracker.summary(per_matrix=False)


def write_run(root: Path, num_tasks: int, methods: list[str], layers: int) -> Path:
    rng = np.random.default_rng(0)
    tasks = [f"task{i:03d}" for i in range(1, num_tasks + 1)]
    root.mkdir(parents=True, exist_ok=True)
    info = {
        "format": "losia_cl.run/1", "command": ["losia-cl", "run", "--out", str(root)], "config": {},
        "seed": 0, "stream": f"synthetic-{num_tasks}", "tasks": tasks,
        "task_metrics": {t: "accuracy" for t in tasks}, "model": "smollm2-135m-instruct", "methods": methods,
        "versions": {}, "git_commit": None, "started_at": "2025-06-01T10:00:00+00:00",
        "finished_at": "2025-06-02T10:00:00+00:00",
    }
    (root / "run.json").write_text(json.dumps(info))
    forget = {"losia": 0.02, "losia-pro": 0.02, "lora": 0.05, "full": 0.1}
    for method in methods:
        s = scores(rng, num_tasks, forget.get(method, 0.05))
        results = {
            "format": "losia_cl.results/1", "method": method, "method_options": {}, "tasks": tasks,
            "task_metrics": info["task_metrics"], "scores": s, "metrics": cl_metrics(s).to_dict(),
            "subnet_overlap": overlap(rng, tasks, layers) if method in LOSIA_FAMILY else None,
            "stability": stability(rng, method, tasks, layers),
            "trainable_parameters": 1_769_472, "total_parameters": 134_515_008, "train_seconds": 3600.0 * num_tasks,
            "eval_seconds": 60.0 * num_tasks, "peak_memory_bytes": 3 << 30, "seed": 0,
            "steps": {t: 8 for t in tasks}, "losses": {t: [1.0, 0.5] for t in tasks},
        }
        folder = root / method
        folder.mkdir(exist_ok=True)
        (folder / "results.json").write_text(json.dumps(results))
        rows = ["after," + ",".join(tasks)] + [
            ("base" if i == 0 else tasks[i - 1]) + "," + ",".join(f"{v:.4f}" for v in row) for i, row in enumerate(s)]
        (folder / "scores.csv").write_text("\n".join(rows) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300, help="number of tasks of the synthetic stream")
    parser.add_argument("--methods", default="losia,lora,full", help="comma-separated method folders")
    parser.add_argument("--layers", type=int, default=2, help="layers of 2 target matrices each (overlap, stability)")
    parser.add_argument("--keep", type=Path, default=None, help="write (or reuse) the run folder here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run = args.keep or Path(scratch) / "run"
        t0 = time.perf_counter()
        if not (run / "run.json").is_file():
            write_run(run, args.tasks, args.methods.split(","), args.layers)
        generated = time.perf_counter() - t0
        out = Path(scratch) / "report" / "report.html"
        command = [sys.executable, "-m", "losia_cl.cli", "report", str(run), "--out", str(out)]
        t1 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - t1
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kib = usage.ru_maxrss
        written = sum(p.stat().st_size for p in out.parent.iterdir())
        inputs = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
        print(json.dumps({
            "tasks": args.tasks, "methods": args.methods, "matrices": 2 * args.layers,
            "run_folder_mib": round(inputs / 2**20, 1), "generate_s": round(generated, 1),
            "report_wall_s": round(wall, 1), "report_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "report_peak_rss_mib": round(peak_kib / 1024),
            "report_files": len(list(out.parent.iterdir())), "report_mib": round(written / 2**20, 1),
            "load_average": [round(v, 1) for v in os.getloadavg()], "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
