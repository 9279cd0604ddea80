"""LoSiAConfig.reference(): the official code's choices, each a documented, validated field (numbers by hand)."""

from __future__ import annotations

import math

import pytest
import torch

from losia_cl import ConfigError, LoSiAConfig, build_losia
from losia_cl.optim.adamw import adamw_update
from losia_cl.optim.lr import losia_scheduler
from losia_cl.optim.schedule import envelope_lr, rewarm_factor
from losia_cl.optim.targets import find_targets, subnet_size

from conftest import make_tiny_llama


def test_reference_sets_the_official_choices_and_takes_overrides():
    config = LoSiAConfig.reference(lr=2e-4)
    assert (config.keep_step_count, config.ramps_from_zero, config.envelope, config.warmup_ratio, config.output_slot,
            config.subnet_rounding, config.dense_params, config.hf_epsilon, config.init, config.schedule) == (
        True, True, "official", 0.1, "first", "int", "adam", True, "random", "async")
    assert config.lr == 2e-4 and LoSiAConfig.reference(output_slot="last").output_slot == "last"
    default = LoSiAConfig()
    assert (default.keep_step_count, default.ramps_from_zero, default.envelope, default.output_slot,
            default.subnet_rounding, default.hf_epsilon) == (False, False, "current", "last", "floor", False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("keep_step_count", 1), ("ramps_from_zero", "yes"), ("hf_epsilon", None), ("output_slot", "middle"),
     ("subnet_rounding", "ceil"), ("dense_params", "sgd")],
)
def test_new_fields_are_validated(field, value):
    with pytest.raises(ConfigError, match=f"LoSiAConfig.{field}"):
        LoSiAConfig(**{field: value})


def test_bias_correction_after_a_relocalization_by_hand():
    # zeroed moments, gradient 0.5, lr 0.1; a kept counter of 10 makes this Adam step t = 11:
    # m = 0.05, v = 2.5e-4, step = 0.1 * sqrt(1 - 0.999^11) / (1 - 0.9^11) = 0.0152466
    # hf epsilon: w = 1 - 0.0152466 * 0.05 / (sqrt(2.5e-4) + 1e-6) = 0.9517897
    w = torch.ones(1)
    adamw_update(w, torch.tensor([0.5]), torch.zeros(1), torch.zeros(1), torch.tensor(10.0),
                 lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, hf_epsilon=True)
    assert w.item() == pytest.approx(0.9517897, abs=1e-7)
    # a restarted counter (t = 1): m_hat / sqrt(v_hat) = 1, so w = 1 - 0.1
    w = torch.ones(1)
    adamw_update(w, torch.tensor([0.5]), torch.zeros(1), torch.zeros(1), torch.tensor(0.0),
                 lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    assert w.item() == pytest.approx(0.9, abs=1e-6)


def test_coupled_weight_decay_is_torch_adam():
    torch.manual_seed(0)
    p, q = torch.randn(5, requires_grad=True), torch.zeros(5)
    q.copy_(p.detach())
    adam = torch.optim.Adam([p], lr=0.01, weight_decay=0.1)  # eps 1e-8
    m, v, t = torch.zeros(5), torch.zeros(5), torch.tensor(0.0)
    for k in range(3):
        grad = torch.full((5,), 0.3 * (k + 1))
        p.grad = grad.clone()
        adam.step()
        adamw_update(q, grad, m, v, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1,
                     decoupled_weight_decay=False)
    torch.testing.assert_close(q, p.detach(), rtol=0, atol=1e-7)


def test_step_counter_continues_across_a_relocalization(batch):
    counters = {}
    for keep in (False, True):
        model = make_tiny_llama(seed=2)
        opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=2, keep_step_count=keep, pro=False))
        weight = model.model.layers[0].self_attn.q_proj.weight
        for _ in range(3):  # slot 0 records steps 0, 1 and re-localizes at boundary 2; step 2 follows
            model(input_ids=batch, labels=batch).loss.backward()
            opt.step()
            opt.zero_grad()
        counters[keep] = (int(opt.state[weight]["last_relocalization"]), opt.state[weight]["step"].item())
    assert counters == {False: (2, 1.0), True: (2, 3.0)}


def test_ramp_and_warmup_values_by_hand():
    # re-warm over T = 4 after a re-localization at boundary 8
    assert [rewarm_factor(s, 8, 4) for s in range(8, 13)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert [rewarm_factor(s, 8, 4, from_zero=True) for s in range(8, 13)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # 10% of 30 steps = 3 warm-up steps at peak 1
    assert [envelope_lr(s, 30, 1.0, 0.1, 0.1) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert [envelope_lr(s, 30, 1.0, 0.1, 0.1, from_zero=True) for s in range(4)] == pytest.approx(
        [0.0, 1 / 3, 2 / 3, 1.0])


def test_reference_learning_rates_through_the_optimizer(batch):
    model = make_tiny_llama(seed=3)
    config = LoSiAConfig.reference(rank_factor=1 / 4, period=4, lr=0.3, output_rank_factor=0.25, pro=False)
    opt = build_losia(model, config)
    scheduler = losia_scheduler(opt, 30)  # 3 warm-up steps from 0
    q_proj = next(g for g in opt.param_groups if g["name"] == "model.layers.0.self_attn.q_proj")
    seen = []
    for _ in range(12):
        seen.append(opt.learning_rate(q_proj))
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        scheduler.step()
        opt.zero_grad()
    # the head is slot 0, layer 0 slot 1: it records in steps 4..7, re-localizes at boundary 8, then ramps from 0
    assert next(g["slot"] for g in opt.param_groups if g["name"] == "lm_head") == 0
    assert int(opt.state[q_proj["params"][0]]["last_relocalization"]) == 8
    assert seen[:3] == pytest.approx([0.0, 0.1, 0.2])
    # after the warm-up, a matrix never re-localized still ramps from boundary 0: 3/4 at step 3
    assert seen[3] == pytest.approx(0.225)
    assert seen[8] == 0.0
    # the ramp multiplies the cosine frozen at the re-localization's progress 8 / (30 - 3)
    assert seen[9] == pytest.approx(0.25 * 0.3 * (0.1 + 0.45 * (1 + math.cos(math.pi * 8 / 27))))


def test_head_slot_first_or_last(tiny_llama):
    first = {t.name: t.slot for t in find_targets(tiny_llama, 1 / 8, output_rank_factor=0.25, head_first=True)}
    last = {t.name: t.slot for t in find_targets(tiny_llama, 1 / 8, output_rank_factor=0.25)}
    assert (first["lm_head"], first["model.layers.0.mlp.up_proj"], first["model.layers.1.mlp.up_proj"]) == (0, 1, 2)
    assert (last["lm_head"], last["model.layers.0.mlp.up_proj"], last["model.layers.1.mlp.up_proj"]) == (2, 0, 1)


def test_int_subnet_sizes_and_empty_subnets_stay_frozen(tiny_llama):
    assert subnet_size(100, 0.57, "int") == 56 and subnet_size(100, 0.57) == 57  # 0.57 * 100 = 56.99999999999999
    assert subnet_size(32, 1 / 64, "int") == 0 and subnet_size(32, 1 / 64) == 1
    opt = build_losia(tiny_llama, LoSiAConfig(rank_factor=1 / 64, subnet_rounding="int", pro=False))
    names = {g["name"] for g in opt.param_groups if g["losia"]}
    assert len(names) == 2 * 5  # k_proj and v_proj (d_out 32: int(0.5) = 0 rows) are left out
    assert not any("k_proj" in n or "v_proj" in n for n in names)
    assert not tiny_llama.model.layers[0].self_attn.k_proj.weight.requires_grad
    assert opt.subnets()["model.layers.0.self_attn.q_proj"][0].numel() == 1  # int(64 / 64)


def test_dense_adam_group_uses_torch_adams_defaults(tiny_llama):
    opt = build_losia(tiny_llama, LoSiAConfig.reference(weight_decay=0.01, pro=False))
    dense = next(g for g in opt.param_groups if not g["losia"])
    assert (dense["eps"], dense["decoupled_weight_decay"], dense["hf_epsilon"]) == (1e-8, False, False)
    target = next(g for g in opt.param_groups if g["losia"])
    assert (target["eps"], target["decoupled_weight_decay"], target["hf_epsilon"]) == (1e-6, True, True)
