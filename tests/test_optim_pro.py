"""LoSiA-Pro: the same method as plain LoSiA, with subnet-only activations and weight gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from losia_cl import LoSiAConfig, build_losia, unpatch
from losia_cl.optim.lr import losia_scheduler
from losia_cl.optim.pro import LoSiAProLinear

from conftest import make_tiny_llama


def _train(model, opt, ids, steps, clip=1.0, scheduler=None):
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        opt.zero_grad()


@pytest.mark.parametrize("dense_params", ["frozen", "adamw"])
def test_pro_by_default_equals_plain_losia_over_three_cycles(batch, dense_params):
    base = make_tiny_llama(seed=11, layers=2)
    config = dict(rank_factor=1 / 4, period=3, lr=5e-3, dense_params=dense_params, warmup_ratio=0.1)
    plain, pro = copy.deepcopy(base), copy.deepcopy(base)
    steps = 3 * 2 * 3 + 1  # three full cycles of N=2 slots x T=3, plus one step
    opt_plain = build_losia(plain, LoSiAConfig(**config, pro=False))
    opt_pro = build_losia(pro, LoSiAConfig(**config))  # LoSiA-Pro is the default
    assert sum(isinstance(m, LoSiAProLinear) for m in pro.modules()) == 14
    assert not any(isinstance(m, LoSiAProLinear) for m in plain.modules())
    sched_plain, sched_pro = losia_scheduler(opt_plain, steps), losia_scheduler(opt_pro, steps)
    history_plain, history_pro = [], []
    for _ in range(steps):
        _train(plain, opt_plain, batch, 1, scheduler=sched_plain)
        _train(pro, opt_pro, batch, 1, scheduler=sched_pro)
        history_plain.append(opt_plain.subnets())
        history_pro.append(opt_pro.subnets())
    for a, b in zip(history_plain, history_pro):
        assert all(torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]) for k in a)
    relocalized = sum(not torch.equal(history_plain[0][k][0], history_plain[-1][k][0]) for k in history_plain[0])
    assert relocalized == len(history_plain[0])  # every matrix really moved its subnet
    unpatch(pro)
    for (name, a), b in zip(plain.state_dict().items(), pro.state_dict().values()):
        assert (a - b).abs().max() <= 1e-5 * a.abs().max(), name
    assert any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), plain.state_dict().values()))


def _pro_layer(d_in=40, d_out=48, rows=(1, 5, 9, 17, 30, 47), cols=(0, 3, 4, 39), bias=True, seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(d_in, d_out, bias=bias)
    reference = copy.deepcopy(linear)
    layer = LoSiAProLinear(linear, len(rows), len(cols))
    layer.set_subnet(torch.tensor(rows), torch.tensor(cols), full=False)
    return layer, reference


def _saved_bytes(module, x, exclude):
    saved = []

    def pack(t):
        if not any(t.data_ptr() == e.data_ptr() for e in exclude):
            saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    return sum(saved)


def test_saved_activation_bytes_shrink_by_subnet_columns():
    layer, reference = _pro_layer()
    x = torch.randn(3, 7, 40, requires_grad=True)
    plain_bytes = _saved_bytes(reference, x, [reference.weight, reference.bias])
    pro_bytes = _saved_bytes(layer, x, [layer.weight, layer.bias, layer.rows, layer.cols])
    assert plain_bytes == 3 * 7 * 40 * 4
    assert pro_bytes == 3 * 7 * 4 * 4  # |C| / d_in = 4 / 40 of plain
    assert pro_bytes / plain_bytes == pytest.approx(4 / 40)


class _ShapeLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


def test_no_full_size_weight_gradient_in_subnet_mode():
    layer, reference = _pro_layer()
    x = torch.randn(3, 7, 40, requires_grad=True)
    y = layer(x)
    with _ShapeLog() as log:
        y.sum().backward()
    assert (48, 40) not in log.shapes and (40, 48) not in log.shapes
    assert layer.weight.grad is None and layer.weight_grad_sink.grad.shape == (6, 4)
    # and plain autograd does create one (the check can fail)
    y = reference(x)
    with _ShapeLog() as log:
        y.sum().backward()
    assert (48, 40) in log.shapes


def test_gradients_equal_nn_linear():
    layer, reference = _pro_layer()
    x1 = torch.randn(3, 7, 40, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(3, 7, 48)
    out_pro, out_ref = layer(x1), reference(x2)
    assert torch.equal(out_pro, out_ref)
    out_pro.backward(g)
    out_ref.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-6)
    rows, cols = layer.rows, layer.cols
    torch.testing.assert_close(layer.weight_grad_sink.grad, reference.weight.grad[rows][:, cols], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.bias_grad_sink.grad, reference.bias.grad[rows], rtol=1e-5, atol=1e-6)


def test_full_mode_is_plain_linear():
    layer, reference = _pro_layer()
    layer.set_subnet(layer.rows, layer.cols, full=True)
    x = torch.randn(5, 40)
    layer(x).sum().backward()
    reference(x).sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad)
    assert layer.weight_grad_sink.grad is None


def test_bfloat16_autocast_on_cpu():
    layer, reference = _pro_layer()
    x = torch.randn(4, 40, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        y_ref = reference(x)
    assert y.dtype == torch.bfloat16 == y_ref.dtype
    torch.testing.assert_close(y, y_ref)
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and layer.weight_grad_sink.grad.dtype == torch.float32
    expected = (torch.ones(4, 48) @ reference.weight.detach())
    torch.testing.assert_close(x.grad, expected, rtol=2e-2, atol=2e-2)


def test_training_under_autocast_runs(batch):
    model = make_tiny_llama(seed=12)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=2, lr=1e-2, pro=True))
    losses = []
    for _ in range(6):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_unpatch_round_trip_and_plain_checkpoint(batch):
    model = make_tiny_llama(seed=13)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=2, lr=1e-2, pro=True))
    _train(model, opt, batch, 3)
    assert sum(isinstance(m, LoSiAProLinear) for m in model.modules()) == 14
    state = model.state_dict()
    assert not any("grad_sink" in k for k in state)
    with torch.no_grad():
        patched_logits = model(input_ids=batch).logits
    unpatch(model)
    assert not any(isinstance(m, LoSiAProLinear) for m in model.modules())
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 15
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=batch).logits, patched_logits, rtol=0, atol=0)
    plain = make_tiny_llama(seed=0)
    plain.load_state_dict(model.state_dict())  # an ordinary Hugging Face checkpoint
    linears = [m for m in model.model.layers.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 14 and all(m.weight.requires_grad for m in linears)  # no layer left in subnet mode
