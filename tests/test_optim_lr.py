"""LoSiA reads ``group["lr"]``: schedulers drive it as they drive AdamW; the re-warm ramp multiplies it."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import torch

from losia_cl import LoSiAConfig, build_losia
from losia_cl.methods import create_method
from losia_cl.methods.base import TaskContext
from losia_cl.optim.lr import envelope_scheduler, losia_scheduler
from losia_cl.optim.schedule import envelope_lr

from conftest import make_tiny_llama, max_abs_diff


def _train(model, opt, scheduler, ids, steps):
    lrs = []
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
        opt.zero_grad()
    return lrs


def test_lambdalr_drives_losia_exactly_as_adamw(batch):
    model_a = make_tiny_llama(seed=3)
    model_b = copy.deepcopy(model_a)
    config = LoSiAConfig(rank_factor=1.0, period=1000, lr=2e-3, weight_decay=0.01, dense_params="adamw")
    losia = build_losia(model_a, config)
    adamw = torch.optim.AdamW(model_b.parameters(), lr=2e-3, betas=config.betas, eps=config.eps, weight_decay=0.01)
    lrs_a = _train(model_a, losia, envelope_scheduler(losia, 12, 1 / 3, 0.1), batch, 12)
    lrs_b = _train(model_b, adamw, envelope_scheduler(adamw, 12, 1 / 3, 0.1), batch, 12)
    assert lrs_a == lrs_b
    assert lrs_a[:4] == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3]) and lrs_a[-1] == pytest.approx(2e-4)
    assert max_abs_diff(model_a, model_b) < 1e-6
    # the schedule matters: a constant learning rate ends elsewhere
    model_c = copy.deepcopy(make_tiny_llama(seed=3))
    constant = build_losia(model_c, config)
    _train(model_c, constant, torch.optim.lr_scheduler.LambdaLR(constant, lambda s: 1.0), batch, 12)
    assert max_abs_diff(model_a, model_c) > 1e-3


def test_rewarm_factor_multiplies_the_group_lr(batch):
    # p = 1/4, T = 4, constant lr: the first update after a re-localization moves every subnet entry by
    # lr/T (Adam's first bias-corrected step is lr * g/(|g| + eps), ~lr for |g| >> eps), the second by 2 lr/T
    model = make_tiny_llama(seed=5)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=4, lr=1.0, eps=1e-12))
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.01)  # group lr 0.01 instead of 1.0
    q = next(g for g in opt.param_groups if g["name"] == "model.layers.0.self_attn.q_proj")
    weight = q["params"][0]
    _train(model, opt, scheduler, batch, 4)  # layer 0 records in steps 0..3 and re-localizes at boundary 4
    assert int(opt.state[weight]["last_relocalization"]) == 4
    rows, cols = opt.subnets()[q["name"]]
    moves = []
    for _ in range(2):
        before = weight.detach().clone()
        _train(model, opt, scheduler, batch, 1)
        moves.append((weight.detach() - before)[rows][:, cols].abs())
    assert moves[0].median().item() == pytest.approx(0.01 / 4, rel=1e-3)
    assert moves[0].max().item() <= 0.01 / 4 * (1 + 1e-5)
    assert opt.learning_rate(q, 5) == pytest.approx(0.01 * 2 / 4)


def test_a_legacy_state_dict_moves_the_losia_methods_scheduler(batch):
    """State dicts written when LoSiA applied the envelope itself carry no scheduler state."""
    method = create_method("losia", lr=1e-2, losia_options={"warmup_ratio": 0.5})
    ctx = TaskContext(0, 1, 20, 0)
    model = make_tiny_llama(seed=2)
    opt, scheduler = method.build_optimizer(method.prepare(model, ctx), ctx)
    _train(model, opt, scheduler, batch, 3)
    legacy = opt.state_dict()
    del legacy["losia"]["format"]
    legacy["losia"]["num_training_steps"] = 20
    for group in legacy["param_groups"]:  # the old optimizer kept the configured lr in its groups
        group["lr"] = 1e-2
        group.pop("initial_lr")
    fresh_model = make_tiny_llama(seed=2)
    opt2, scheduler2 = method.build_optimizer(method.prepare(fresh_model, ctx), ctx)
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-3)  # step 0 of a 10-step warm-up
    opt2.load_state_dict(legacy)
    assert opt2.global_step == 3 and opt2.legacy_envelope
    assert opt2.param_groups[0]["lr"] == pytest.approx(envelope_lr(3, 20, 1e-2, 0.5, 0.1)) == pytest.approx(4e-3)
    scheduler2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(5e-3)


def test_losia_scheduler_needs_a_step_count():
    from losia_cl import ConfigError

    opt = build_losia(make_tiny_llama(), LoSiAConfig())
    with pytest.raises(ConfigError, match="num_training_steps"):
        losia_scheduler(opt, 0)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):  # module-level and function-level imports alike
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("losia_cl.optim"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("losia_cl.optim"))
    return found


def test_the_optim_package_has_no_import_cycle():
    root = Path(__file__).resolve().parents[1] / "losia_cl" / "optim"
    graph = {f"losia_cl.optim.{p.stem}": _imports(p) for p in root.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert "losia_cl.optim.losia" in graph["losia_cl.optim.build"] and "losia_cl.optim.pro" in graph["losia_cl.optim.build"]


def test_applied_lr_weights_groups_by_their_entries():
    from losia_cl.optim.lr import applied_lr

    small, large = torch.nn.Parameter(torch.zeros(10)), torch.nn.Parameter(torch.zeros(3, 10))
    frozen = torch.nn.Parameter(torch.zeros(100), requires_grad=False)
    opt = torch.optim.AdamW([{"params": [small], "lr": 0.1}, {"params": [large, frozen], "lr": 0.3}])
    assert applied_lr(opt) == pytest.approx((10 * 0.1 + 30 * 0.3) / 40)


def test_losia_applied_lr_is_zero_while_scoring_then_follows_the_ramps(batch):
    from losia_cl.optim.lr import applied_lr

    model = make_tiny_llama(seed=4)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 4, period=2, lr=0.01, init="importance"))
    seen = []
    for _ in range(5):
        seen.append(applied_lr(opt))
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad()
    # steps 0, 1 only score; all re-localize at boundary 2 and ramp over T = 2 (1/2, then 1);
    # layer 0 records in steps 2, 3 and re-localizes at 4: step 4 has layer 0 at 1/2, layer 1 (same shapes) at 1
    assert seen == pytest.approx([0.0, 0.0, 0.005, 0.01, 0.0075])
