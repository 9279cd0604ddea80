"""`losia-cl bench --nproc 2`: what each method all-reduces per step, counted in two gloo processes."""

from __future__ import annotations

import json

import pytest

from losia_cl.bench import BenchConfig, build_model, main

pytestmark = pytest.mark.slow  # two fresh processes build five models each

SIZES = ["--hidden-size", "64", "--intermediate-size", "128", "--num-layers", "2", "--vocab-size", "128",
         "--batch-size", "4", "--seq-len", "16", "--rounds", "2", "--warmup", "1"]


def _expected_bytes() -> dict[str, float]:
    """From the model's shapes alone: full sends every weight; LoSiA sends subnet blocks, except for the
    recording layer (layer 0 during the first slot), whose matrices go whole."""
    from losia_cl.optim.targets import find_targets

    cfg = BenchConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=128, seq_len=16)
    model = build_model(cfg)
    targets = find_targets(model, 1 / 8)
    full_layer = sum(t.shape[0] * t.shape[1] for t in targets if t.slot == 0)
    blocks = {slot: sum(t.subnet_shape[0] * t.subnet_shape[1] for t in targets if t.slot == slot) for slot in (0, 1)}
    period = BenchConfig().period  # the bench's slot length T
    return {
        "full": 4 * sum(p.numel() for p in model.parameters()),
        "losia": 4 * (full_layer + blocks[1]),
        "losia-pro": 4 * (full_layer + blocks[1]),
        "losia-pro/local-importance": 4 * (blocks[0] + blocks[1]) + 3 * 4 * full_layer / period,
        "targets_whole": 4 * sum(t.shape[0] * t.shape[1] for t in targets),
    }


def test_bytes_all_reduced_per_step(capsys):
    assert main(["--nproc", "2", "--json", *SIZES]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    expected = _expected_bytes()
    assert summary["full"]["bytes"] == expected["full"]
    assert summary["losia-pro"]["bytes"] == expected["losia-pro"]
    # LoSiA-Pro has no masked full-size gradients to send at all; plain LoSiA has them and sends their blocks
    assert summary["losia-pro"]["dense_bytes"] == expected["losia-pro"]
    assert summary["losia"]["bytes"] == expected["losia"]
    assert summary["losia"]["dense_bytes"] == expected["targets_whole"]
    assert summary["losia-pro/local-importance"]["bytes"] == pytest.approx(expected["losia-pro/local-importance"])
    assert 0 < summary["lora"]["bytes"] < summary["losia-pro"]["bytes"] < summary["full"]["bytes"]
    assert "| losia-pro | " in printed and "MiB all-reduced per step" in printed
