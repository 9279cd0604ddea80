"""The losia method's schedule fits the task: every layer localizes its subnet from the task's own gradients."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from losia_cl import ConfigError
from losia_cl.methods import create_method
from losia_cl.methods.base import TaskContext
from losia_cl.optim.schedule import SlotSchedule, fit_schedule, relocalization_counts

from conftest import make_tiny_llama


@pytest.mark.parametrize(
    ("steps", "slots", "init", "expected"),
    [
        (16, 30, "importance", (1, "sync")),  # 31 slots x 4 > 15: every layer records together, 1 step in 16
        (64, 30, "importance", (4, "sync")),  # 64 // 16 = 4 = T_min
        (40, 30, "importance", (2, "sync")),  # the two recording slots stay within an eighth of the task
        (1000, 3, "importance", (50, "async")),  # the paper's T caps it
        (200, 3, "importance", (49, "async")),  # (3 + 1) x 49 = 196 < 200
        (100, 3, "random", (33, "async")),  # no scoring slot: 3 x 33 = 99 < 100
        (21, 4, "importance", (4, "async")),  # (4 + 1) x 4 = 20 < 21 ...
        (20, 4, "importance", (1, "sync")),  # ... but not < 20: 19 // 5 = 3 < T_min
        (7, 30, "importance", (1, "sync")),  # one step scores, one records, five train
        (1, 30, "importance", (1, "sync")),
    ],
)
def test_fit_schedule(steps, slots, init, expected):
    assert fit_schedule(steps, slots, init, min_period=4) == expected


def test_relocalization_counts_of_both_schedules():
    assert relocalization_counts(SlotSchedule(30, 4, "sync", offset=4), 16) == [2] * 30  # boundaries 4 and 8
    # init at 5; then slot 0 at 10, 25, 40, slot 1 at 15, 30, slot 2 at 20, 35
    assert relocalization_counts(SlotSchedule(3, 5, "async", offset=5), 40) == [4, 3, 3]
    assert relocalization_counts(SlotSchedule(30, 1, "async"), 16) == [1] * 16 + [0] * 14


def _run_task(model, method, steps, seed=0, clip=None):
    ctx = TaskContext(0, 1, steps, seed)
    model = method.prepare(model, ctx)
    opt, scheduler = method.build_optimizer(model, ctx)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 32, (2, 8), generator=generator)
        model(input_ids=ids, labels=ids).loss.backward()
        if clip:
            opt.clip_grad_norm_(clip)
        opt.step()
        scheduler.step()
        opt.zero_grad()
    per_layer: dict[int, int] = {}
    for group in opt.param_groups:
        if group["losia"]:
            count = opt.relocalization_counts()[group["name"]]
            per_layer[group["slot"]] = min(count, per_layer.get(group["slot"], count))
    record = method.describe(opt)
    method.after_task(model, opt, ctx)
    return opt, per_layer, record


@pytest.mark.slow
def test_default_run_shape_relocalizes_every_layer(caplog):
    """16 steps per task and 30 decoder layers, as the default run on SmolLM2-135M."""
    model = make_tiny_llama(seed=0, layers=30, hidden=16, intermediate=32, vocab=32)
    with caplog.at_level(logging.INFO, logger="losia_cl.methods.losia"):
        opt, per_layer, record = _run_task(model, create_method("losia"), 16, clip=1.0)
    assert (opt.config.period, opt.config.schedule, opt.config.init) == (1, "sync", "importance")
    assert per_layer == {layer: 2 for layer in range(30)}  # boundaries 1 and 2: 2 of 16 steps record
    assert [r.getMessage() for r in caplog.records if r.name == "losia_cl.methods.losia"] == [
        "losia task 1/1: 16 steps, 30 slots, T=1, sync schedule, init=importance, re-localizations per layer: 2"
    ]
    assert record["relocalizations_per_layer"] == {str(layer): 2 for layer in range(30)}
    assert record["never_relocalized"] == [] and record["steps"] == 16
    assert record["schedule"] == {"period": 1, "mode": "sync", "init": "importance", "slots": 30, "fitted": True,
                                  "min_period": 4}
    assert record["clipping"].startswith("LoSiA.clip_grad_norm_") and record["config"]["period"] == 1
    json.dumps(record)  # JSON-able, for results.json
    # the former rule, T = clamp(steps // slots, 1, 50) with random subnets, left 14 layers as drawn
    _, old, record = _run_task(model, create_method("losia", period=1, losia_options={"init": "random"}), 16)
    assert sorted(layer for layer, count in old.items() if count == 0) == list(range(16, 30))
    assert record["never_relocalized"] == list(range(16, 30)) and record["clipping"] == "none"


def test_short_task_falls_back_to_sync_and_long_task_stays_async():
    model = make_tiny_llama(seed=1, layers=3, hidden=16, intermediate=32, vocab=32)
    method = create_method("losia")
    short = method.config_for(model, TaskContext(0, 1, 15, 0))  # (3 + 1) x 4 = 16 > 14
    assert (short.period, short.schedule, short.init) == (1, "sync", "importance")  # 15 // 16 steps, at least 1
    long = method.config_for(model, TaskContext(0, 1, 41, 0))  # 40 // 4 = 10
    assert (long.period, long.schedule) == (10, "async")
    opt, per_layer, _ = _run_task(model, method, 41)
    assert per_layer == {0: 2, 1: 2, 2: 2}  # init at 10, then slots end at 20, 30, 40
    forced = create_method("losia", losia_options={"schedule": "async"}).config_for(model, TaskContext(0, 1, 15, 0))
    assert (forced.period, forced.schedule) == (1, "async")  # an explicit schedule wins
    one = method.config_for(model, TaskContext(0, 1, 1, 0))  # no step left to train after scoring
    assert (one.period, one.schedule, one.init) == (1, "sync", "random")


def test_min_period_is_validated():
    with pytest.raises(ConfigError, match="min_period"):
        create_method("losia", min_period=0)
    with pytest.raises(ConfigError, match="losia_options"):
        create_method("losia", losia_options={"period": 3})
