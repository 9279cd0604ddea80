"""GaLore through galore_torch: its updates against a from-scratch reference, plain state dicts, resume, the extra."""

from __future__ import annotations

import io
import sys

import pytest
import torch
from conftest import make_tiny_llama

from losia_cl.errors import ConfigError
from losia_cl.methods import TaskContext, create_method, method_names
from losia_cl.methods.galore import (
    MISSING_PACKAGE,
    load_galore,
    losia_moment_entries,
    matched_rank,
    projected_shapes,
    state_entries,
)
from losia_cl.optim.targets import find_targets
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.checkpoint import CHECKPOINT_NAME, Checkpoint, CheckpointError, rng_state

CTX = TaskContext(task_index=0, num_tasks=1, num_training_steps=8, seed=0)


def _ids(seed: int) -> torch.Tensor:
    return torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(seed))


def _backward(model, seed: int) -> None:
    ids = _ids(seed)
    model(input_ids=ids, labels=ids).loss.backward()


def _built(seed: int = 0, **options):
    method = create_method("galore", **options)
    model = method.prepare(make_tiny_llama(seed=seed), CTX)
    optimizer, scheduler = method.build_optimizer(model, CTX)
    return method, model, optimizer, scheduler


def _reference_update(grad, state, *, step, rank, gap, scale, lr, betas=(0.9, 0.999), eps=1e-6):
    """GaLore-Adam written from the paper: project G onto r singular vectors of its smaller side (refreshed
    every ``gap`` steps, moments kept across refreshes), Adam in that space, project back, times scale."""
    m, n = grad.shape
    if step % gap == 0:
        u, _, vh = torch.linalg.svd(grad, full_matrices=False)
        state["basis"] = vh[:rank] if m >= n else u[:, :rank]
    basis = state["basis"]
    low = grad @ basis.T if m >= n else basis.T @ grad
    state.setdefault("m", torch.zeros_like(low)).mul_(betas[0]).add_(low, alpha=1 - betas[0])
    state.setdefault("v", torch.zeros_like(low)).mul_(betas[1]).addcmul_(low, low, value=1 - betas[1])
    t = step + 1
    step_size = lr * (1 - betas[1] ** t) ** 0.5 / (1 - betas[0] ** t)
    normalized = state["m"] / (state["v"].sqrt() + eps)
    back = normalized @ basis if m >= n else basis @ normalized
    return -step_size * scale * back


def test_galore_is_registered_with_documented_defaults():
    assert "galore" in method_names()
    method = create_method("galore")
    assert (method.rank, method.update_proj_gap, method.scale, method.proj_type) == (None, 200, 0.25, "std")


@pytest.mark.parametrize(("options", "message"), [
    ({"rank": 0}, "galore.rank = 0 is invalid: it must be null or an integer >= 1"),
    ({"update_proj_gap": 0}, "galore.update_proj_gap = 0 is invalid: it must be an integer >= 1"),
    ({"scale": -1.0}, "galore.scale = -1.0 is invalid: it must be a number > 0"),
    ({"proj_type": "diagonal"}, "galore.proj_type = 'diagonal' is invalid: it must be one of std, reverse_std,"),
    ({"dense_params": "adam"}, "galore.dense_params = 'adam' is invalid: it must be one of frozen, adamw"),
    ({"lr": 0}, "galore.lr = 0 is invalid"),
])
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        create_method("galore", **options)


def test_updates_equal_a_from_scratch_galore_adam():
    """Four steps, the projector refreshed at steps 0 and 2: every target matrix moves exactly as the reference."""
    rank, gap, scale, lr = 3, 2, 0.5, 1e-2
    method, model, optimizer, _ = _built(rank=rank, update_proj_gap=gap, scale=scale, lr=lr)
    targets = find_targets(model, 1 / 8)
    shapes = {tuple(t.weight.shape) for t in targets}
    assert any(m > n for m, n in shapes) and any(m < n for m, n in shapes)  # both projection sides are exercised
    trained = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trained} == {id(t.weight) for t in targets}  # embeddings, norms, head frozen
    states = [{} for _ in targets]
    for step in range(4):
        _backward(model, seed=step)
        grads = [t.weight.grad.detach().clone() for t in targets]
        before = [t.weight.detach().clone() for t in targets]
        optimizer.step()  # no scheduler step: the learning rate stays lr
        optimizer.zero_grad(set_to_none=True)
        for t, grad, old, state in zip(targets, grads, before, states):
            expected = _reference_update(grad, state, step=step, rank=rank, gap=gap, scale=scale, lr=lr)
            moved = t.weight.detach() - old
            assert moved.abs().max() > 1e-5
            torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-7)
    record = method.describe(optimizer)
    assert record == {"rank": 3, "update_proj_gap": 2, "projected_matrices": len(targets), "steps": 4,
                      "projector_updates": 2}


def test_dense_params_adamw_trains_every_other_parameter_unprojected():
    _, model, optimizer, _ = _built(rank=2, dense_params="adamw")
    assert all(p.requires_grad for p in model.parameters())
    projected, plain = optimizer.param_groups
    assert projected["rank"] == 2 and "rank" not in plain
    assert len(projected["params"]) + len(plain["params"]) == len(list(model.parameters()))
    _backward(model, seed=0)
    embedding = model.get_input_embeddings().weight
    before = embedding.detach().clone()
    optimizer.step()
    assert optimizer.state[embedding]["exp_avg"].shape == embedding.shape  # full-size moments: not projected
    assert not torch.equal(before, embedding.detach())


@pytest.mark.parametrize("proj_type", ["std", "reverse_std", "left", "right", "full"])
def test_projected_shapes_are_the_ones_galore_torch_allocates(proj_type):
    _, model, optimizer, _ = _built(rank=5, proj_type=proj_type)
    _backward(model, seed=0)
    optimizer.step()
    group = optimizer.param_groups[0]
    for weight in group["params"]:
        state = optimizer.state[weight]
        matrix = state["projector"].ortho_matrix
        matrices = matrix if isinstance(matrix, list) else [matrix]
        moments, projectors = projected_shapes(tuple(weight.shape), 5, proj_type)
        assert tuple(state["exp_avg"].shape) == tuple(state["exp_avg_sq"].shape) == moments
        assert [tuple(m.shape) for m in matrices] == projectors
        held = state["exp_avg"].numel() + state["exp_avg_sq"].numel() + sum(m.numel() for m in matrices)
        assert held == state_entries(tuple(weight.shape), 5, proj_type), (tuple(weight.shape), proj_type)


@pytest.mark.parametrize(("hidden", "intermediate", "rank_factor"),
                         [(64, 96, 1 / 8), (64, 128, 1 / 4), (96, 256, 1 / 8)])
def test_matched_rank_is_the_rank_whose_state_is_closest_to_losias_moments(hidden, intermediate, rank_factor):
    model = make_tiny_llama(hidden=hidden, intermediate=intermediate)
    targets = find_targets(model, rank_factor)
    budget = losia_moment_entries(targets)
    assert budget == sum(2 * int(rank_factor * a) * int(rank_factor * b) for a, b in (t.shape for t in targets))
    rank = matched_rank(model, rank_factor)

    def distance(r: int) -> int:
        return abs(sum(state_entries(tuple(t.weight.shape), r) for t in targets) - budget)

    assert all(distance(rank) <= distance(r) for r in range(1, 65)), (rank, budget)
    assert create_method("galore", rank_factor=rank_factor).resolved_rank(model) == rank


def test_state_dict_is_plain_data_and_resumes_to_the_same_weights():
    _, model, optimizer, scheduler = _built(rank=3, update_proj_gap=3)
    for step in range(2):  # the projector of step 0 is still in use at step 2
        _backward(model, seed=step)
        optimizer.step(), scheduler.step(), optimizer.zero_grad(set_to_none=True)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
               buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # no Python object needed to read it
    some = optimizer.param_groups[0]["params"][0]
    assert type(optimizer.state[some]["projector"]).__name__ == "GaLoreProjector"  # the live state is untouched
    _, clone, restored, restored_scheduler = _built(seed=9, rank=3, update_proj_gap=3)
    clone.load_state_dict(saved["model"])
    restored.load_state_dict(saved["optimizer"])
    restored_scheduler.load_state_dict(saved["scheduler"])
    for step in range(2, 5):  # step 3 refreshes the projector
        for m, o, s in ((model, optimizer, scheduler), (clone, restored, restored_scheduler)):
            _backward(m, seed=step)
            o.step(), s.step(), o.zero_grad(set_to_none=True)
    for (name, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_state_that_does_not_fit_its_rank_is_refused_on_restore(tmp_path):
    _, model, optimizer, _ = _built(rank=3)
    _backward(model, seed=0)
    optimizer.step()
    state = optimizer.state_dict()
    state["param_groups"][0]["rank"] = 2  # a file edited by hand: moments of rank 3 under rank 2
    saved = Checkpoint(task_index=0, step=1, model=model.state_dict(), optimizer=state, scheduler=None,
                       rng=rng_state(), progress={})
    _, clone, fresh, _ = _built(rank=3)
    with pytest.raises(CheckpointError, match=r"its states do not fit .*optimizer state 'exp_avg' has shape "
                                              r"\(\d+, 3\), GaLore expects \(\d+, 2\)"):
        saved.restore(clone, fresh, None, tmp_path)


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_resume_mid_task_gives_the_uninterrupted_results(tmp_path, monkeypatch):
    def config(out, **extra):
        return RunConfig(model="tiny-llama", tasks=("category", "position"), methods=("galore",), lr={"galore": 1e-2},
                         method_options={"galore": {"update_proj_gap": 3}}, max_train_examples=8, max_test_examples=3,
                         batch_size=2, eval_batch_size=4, max_length=48, progress=False, report=False,
                         checkpoint_every=1, stability=True, out=str(out), **extra)

    reference = run_experiment(config(tmp_path / "ref")).results["galore"]
    save, calls = Checkpoint.save, []

    def save_then_stop(self, folder, sync=None, root=None):  # written at once, not in the background
        calls.append((self.task_index, self.step))
        if len(calls) == 7:  # task 2, step 3: stop before it reaches the disk
            raise _Interrupted
        return save(self, folder, root=root)

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    with pytest.raises(_Interrupted):
        run_experiment(config(tmp_path / "crash"))
    monkeypatch.setattr(Checkpoint, "save", save)
    saved = Checkpoint.load(tmp_path / "crash" / "galore")
    assert (saved.task_index, saved.step) == (1, 2)  # resumes at step 2, under the projector of step 0
    assert any("projector_matrix" in entry for entry in saved.optimizer["state"].values())
    resumed = run_experiment(config(tmp_path / "crash", resume=True)).results["galore"]
    for key in ("scores", "metrics", "losses", "stability", "steps", "trainable_parameters", "method_record"):
        assert resumed[key] == reference[key], key
    assert reference["method_record"]["position"]["projector_updates"] == 2  # steps 0 and 3 of 4
    assert not (tmp_path / "crash" / "galore" / CHECKPOINT_NAME).exists()


@pytest.fixture
def without_galore_torch(monkeypatch):
    """galore_torch made unimportable, as on an install without the extra."""
    for name in [n for n in sys.modules if n == "galore_torch" or n.startswith("galore_torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "galore_torch", None)


def test_without_the_package_the_method_is_listed_and_building_it_is_a_one_line_error(
        without_galore_torch, tmp_path, capsys):
    from losia_cl.bench import method_names as bench_methods
    from losia_cl.cli import main

    assert MISSING_PACKAGE == ("method galore needs the galore-torch package, which is not installed: "
                               "pip install 'losia-cl[galore]'")
    assert main(["methods"]) == 0 and "galore" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="^method galore needs the galore-torch package"):
        create_method("galore")
    with pytest.raises(ConfigError, match="pip install 'losia-cl\\[galore\\]'"):
        load_galore()
    assert "galore" not in bench_methods() and "losia" in bench_methods()
    out = tmp_path / "run"
    assert main(["run", "--model", "tiny-llama", "--methods", "galore", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"losia-cl: error: {MISSING_PACKAGE}"]
    assert not out.exists()


def test_loading_galore_does_not_run_its_init():
    adamw, projector = load_galore()
    assert adamw.__module__ == "galore_torch.adamw" and projector.__name__ == "GaLoreProjector"
    # the package's __init__ imports its 8-bit optimizer (and bitsandbytes with it)
    assert "galore_torch.adamw8bit" not in sys.modules

