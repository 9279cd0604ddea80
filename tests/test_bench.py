"""`losia-cl bench` runs every method side by side and prints one row each (sizes tiny: this checks behaviour, not speed)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import torch

from losia_cl.bench import BenchConfig, format_table, memory_of, time_methods
from losia_cl.methods.full import FullFineTuning


def test_time_methods_interleaves_every_method():
    cfg = BenchConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=128, batch_size=1, seq_len=16,
                      rounds=3, warmup=1)
    times = time_methods(cfg, ("full", "lora", "losia", "losia-pro"))
    assert {m: len(t) for m, t in times.items()} == {"full": 3, "lora": 3, "losia": 3, "losia-pro": 3}
    assert all(t > 0 for ts in times.values() for t in ts)
    table = format_table(times, None)
    assert table.splitlines()[2].startswith("| full |") and "| 1.000 |" in table.splitlines()[2]


class _SGDWithScratch(torch.optim.SGD):
    """SGD that fills a scratch buffer of ``scratch_bytes`` during every step, then frees it."""

    scratch_bytes = 0

    def step(self, closure=None):
        scratch = torch.ones(self.scratch_bytes // 4)  # written, so resident
        result = super().step(closure)
        del scratch
        return result


@dataclass
class _ScratchMethod(FullFineTuning):
    scratch_bytes: int = 0

    def build_optimizer(self, model, ctx):
        optimizer = _SGDWithScratch(model.parameters(), lr=self.lr)
        optimizer.scratch_bytes = self.scratch_bytes
        return optimizer, None


def test_memory_of_counts_what_a_training_step_allocates():
    cfg = BenchConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=128, batch_size=1, seq_len=16)
    big = 96 * 2**20
    plain = memory_of(_ScratchMethod(scratch_bytes=0), cfg, steps=1)
    scratch = memory_of(_ScratchMethod(scratch_bytes=big), cfg, steps=1)
    # the tiny model's own step adds far less than the buffer: only the buffer can explain the difference
    assert plain["training_bytes"] < big / 4
    assert scratch["training_bytes"] >= 0.95 * big, (plain, scratch)


def test_cli_dispatches_every_option_to_the_benchmark():
    args = ["--hidden-size", "64", "--intermediate-size", "128", "--num-layers", "2", "--vocab-size", "128",
            "--batch-size", "1", "--seq-len", "16", "--rounds", "1", "--methods", "full,losia-pro", "--no-memory"]
    result = subprocess.run([sys.executable, "-m", "losia_cl.cli", "bench", *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["full", "losia-pro"]
