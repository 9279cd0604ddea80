"""`losia-cl bench` runs every method side by side and prints one row each (sizes tiny: this checks behaviour, not speed)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from losia_cl.bench import PLAIN_LORA, BenchConfig, build_trainee, format_table, memory_of, time_methods
from losia_cl.methods.full import FullFineTuning


TINY = dict(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=128, batch_size=1, seq_len=16)


def test_time_methods_interleaves_every_method():
    cfg = BenchConfig(**TINY, rounds=3, warmup=1, period=2)
    timings = time_methods(cfg, ("full", "lora", "losia", "losia-pro", PLAIN_LORA))
    assert {m: len(t.seconds) for m, t in timings.items()} == {m: 3 for m in timings}
    assert all(s > 0 for t in timings.values() for s in t.seconds)
    table = format_table(timings, None, cfg)
    header, _, full_row = table.splitlines()[:3]
    assert "| vs full | vs lora |" in header
    assert full_row.startswith("| full |") and "| 1.000 |" in full_row
    # plain peft LoRA trains exactly the lora method's adapter
    assert timings[PLAIN_LORA].trainable_parameters == timings["lora"].trainable_parameters > 0


def test_optimizer_state_bytes_count_the_moments():
    cfg = BenchConfig(**TINY)
    full = build_trainee("full", cfg)
    params = list(full.model.parameters())
    full.step()
    # AdamW: two float32 moments per entry and a 0-dim float32 step per parameter
    assert full.optimizer_state_bytes() == 8 * sum(p.numel() for p in params) + 4 * len(params)
    losia = build_trainee("losia", cfg)
    losia.step()
    state = losia.optimizer.state
    # subnet moments |R| x |C| (float32), the subnet indices (int64), and the recording layer's importance EMAs
    moments = sum(8 * s["exp_avg"].numel() for s in state.values() if "rows" in s)
    assert moments == 8 * losia.trainable_parameters
    indices = sum(8 * (s["rows"].numel() + s["cols"].numel()) for s in state.values() if "rows" in s)
    targets = sum(g["params"][0].numel() for g in losia.optimizer.param_groups if "slot" in g)
    # plus full-size importance EMAs (two float32 per entry) of the recording matrices -- every target matrix
    # while the losia method's importance init scores them all -- and a few scalars per parameter
    assert moments + indices < losia.optimizer_state_bytes() <= moments + indices + 8 * targets + 32 * len(state)


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
    cfg = BenchConfig(**TINY)
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


@pytest.mark.slow
def test_bench_trains_a_model_that_run_accepts():
    args = ["--model", "tiny-llama", "--batch-size", "2", "--seq-len", "16", "--rounds", "1", "--warmup", "0",
            "--period", "1", "--methods", "full,losia-pro", "--no-memory", "--references", "full"]
    result = subprocess.run([sys.executable, "-m", "losia_cl.cli", "bench", *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("tiny-llama; batch 2 x 16 tokens;")
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in result.stdout.splitlines()
            if line.startswith("| ") and "method" not in line}
    assert list(rows) == ["full", "losia-pro"]
    for cells in rows.values():  # tokens/s is the batch's 32 tokens over the median step
        assert float(cells[1]) == pytest.approx(32 / float(cells[0]), rel=0.1)


def test_bench_option_errors_are_one_line_with_exit_code_2(capsys):
    from losia_cl.cli import main

    assert main(["bench", "--dtype", "float16"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "losia-cl: error: bench: dtype = 'float16' is invalid: it must be float32 or bfloat16"]
