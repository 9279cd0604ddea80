"""`losia-cl bench` runs every method side by side and prints one row each (sizes tiny: this checks behaviour, not speed)."""

from __future__ import annotations

import subprocess
import sys

from losia_cl.bench import BenchConfig, format_table, memory_of, time_methods


def test_time_methods_interleaves_every_method():
    cfg = BenchConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=128, batch_size=1, seq_len=16,
                      rounds=3, warmup=1)
    times = time_methods(cfg, ("full", "lora", "losia", "losia-pro"))
    assert {m: len(t) for m, t in times.items()} == {"full": 3, "lora": 3, "losia": 3, "losia-pro": 3}
    assert all(t > 0 for ts in times.values() for t in ts)
    table = format_table(times, None)
    assert table.splitlines()[2].startswith("| full |") and "| 1.000 |" in table.splitlines()[2]


def test_memory_of_reports_what_training_adds():
    cfg = BenchConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=128, batch_size=1, seq_len=16)
    memory = memory_of("losia-pro", cfg, steps=1)
    assert memory["training_bytes"] == memory["peak_bytes"] - memory["baseline_bytes"] >= 0


def test_cli_dispatches_every_option_to_the_benchmark():
    args = ["--hidden-size", "64", "--intermediate-size", "128", "--num-layers", "2", "--vocab-size", "128",
            "--batch-size", "1", "--seq-len", "16", "--rounds", "1", "--methods", "full,losia-pro", "--no-memory"]
    result = subprocess.run([sys.executable, "-m", "losia_cl.cli", "bench", *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["full", "losia-pro"]
