"""LoSiA.clip_grad_norm_: the norm of exactly the gradient entries the step applies."""

from __future__ import annotations

import copy

import pytest
import torch

from losia_cl import LoSiAConfig, build_losia

from conftest import make_tiny_llama, max_abs_diff

CONFIG = dict(rank_factor=1 / 4, period=2, lr=1e-2, dense_params="adamw")


def _backward(model, ids):
    model(input_ids=ids, labels=ids).loss.backward()


def _applied_norm(reference, opt, recording_slot):
    """The norm of the applied gradient, from a plain copy's full gradients and the subnets in force."""
    grads = {n: p.grad for n, p in reference.named_parameters()}
    subnets = opt.subnets()
    squares, recording = 0.0, []
    for group in opt.param_groups:
        if group["losia"]:
            rows, cols = subnets[group["name"]]
            squares += grads[group["name"] + ".weight"][rows][:, cols].double().pow(2).sum().item()
            if group["slot"] == recording_slot:
                recording.append(group["name"])
    targets = {g["name"] + ".weight" for g in opt.param_groups if g["losia"]}
    squares += sum(g.double().pow(2).sum().item() for n, g in grads.items() if n not in targets)
    return squares**0.5, recording


@pytest.mark.parametrize("pro", [False, True])
def test_norm_is_the_norm_of_the_applied_gradient(batch, pro):
    model = make_tiny_llama(seed=3)
    opt = build_losia(model, LoSiAConfig(**CONFIG, pro=pro))
    _backward(model, batch)
    opt.step()
    opt.zero_grad()
    # step 1: slot 0 records (its full gradient is there), slot 1 trains its subnet
    reference = make_tiny_llama(seed=0)
    reference.load_state_dict(model.state_dict())
    _backward(reference, batch)
    _backward(model, batch)
    expected, recording = _applied_norm(reference, opt, recording_slot=0)
    assert len(recording) == 7
    norm = opt.clip_grad_norm_(float("inf"))
    assert norm.item() == pytest.approx(expected, rel=1e-5)
    everything = torch.nn.utils.clip_grad_norm_(reference.parameters(), float("inf"))
    assert everything.item() > 1.05 * expected  # the recording layer's full gradient is larger than its block


def test_clipping_scales_the_applied_step_and_leaves_importance_alone(batch):
    base = make_tiny_llama(seed=5)
    clipped, scaled, unclipped = (copy.deepcopy(base) for _ in range(3))
    config = LoSiAConfig(**{**CONFIG, "period": 3}, pro=False)
    opts = [build_losia(m, config) for m in (clipped, scaled, unclipped)]
    for model, opt in zip((clipped, scaled, unclipped), opts):
        _backward(model, batch)
        opt.step()
        opt.zero_grad()
        _backward(model, batch)  # step 1: slot 0 records (steps 0..2)
    norm = opts[0].clip_grad_norm_(0.05)
    factor = 0.05 / (norm.item() + 1e-6)
    assert factor < 0.5  # the clipping bites
    for p in scaled.parameters():  # every gradient scaled by the same factor, as torch would do
        if p.grad is not None:
            p.grad.mul_(factor)
    for opt in opts:
        opt.step()
    # the applied update is the clipped one ...
    assert max_abs_diff(clipped, scaled) < 1e-7
    assert max_abs_diff(clipped, unclipped) > 1e-4
    # ... while slot 0's importance comes from the unclipped gradient
    name = "model.layers.0.self_attn.q_proj"
    importance = [
        next(opt.state[g["params"][0]]["importance_avg"] for g in opt.param_groups if g["name"] == name) for opt in opts
    ]
    assert torch.equal(importance[0], importance[2])
    assert not torch.allclose(importance[0], importance[1])


def test_pro_and_plain_give_the_same_norm_every_step(batch):
    base = make_tiny_llama(seed=7)
    plain, pro = copy.deepcopy(base), copy.deepcopy(base)
    opt_plain = build_losia(plain, LoSiAConfig(**CONFIG, pro=False))
    opt_pro = build_losia(pro, LoSiAConfig(**CONFIG, pro=True))
    norms = []
    for _ in range(9):  # two full cycles of 2 slots x T = 2: recording, re-localizing and training steps
        pair = []
        for model, opt in ((plain, opt_plain), (pro, opt_pro)):
            _backward(model, batch)
            pair.append(opt.clip_grad_norm_(1.0).item())
            opt.step()
            opt.zero_grad()
        norms.append(pair)
    for a, b in norms:
        assert a == pytest.approx(b, rel=1e-5)
    assert max(a for a, _ in norms) > 1.0  # clipping was active in some steps


def test_scoring_phase_and_layerwise_leave_targets_out(batch):
    model = make_tiny_llama(seed=9)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=3, init="importance"))  # dense frozen
    _backward(model, batch)
    assert opt.clip_grad_norm_(1.0).item() == 0.0  # scoring only: the step applies nothing
    model = make_tiny_llama(seed=9)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=3, layerwise=True, dense_params="adamw"))
    _backward(model, batch)  # target matrices were updated inside backward
    dense = [p.grad for g in opt.param_groups if not g["losia"] for p in g["params"] if p.grad is not None]
    expected = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in dense]))
    assert opt.clip_grad_norm_(1e9).item() == pytest.approx(expected.item(), rel=1e-6)
