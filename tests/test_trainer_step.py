"""The shared training step and the batch plan."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_tiny_llama

from losia_cl.errors import ConfigError
from losia_cl.trainer.plan import BatchPlan
from losia_cl.trainer.step import backward_micro_batch, train_step


def _lm_loss(model, batch):
    return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss


def _ids(rows: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 128, (rows, 10), generator=torch.Generator().manual_seed(seed))


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


# ---------------------------------------------------------------- BatchPlan
def test_plan_visits_every_example_once_per_epoch_in_a_seeded_order():
    plan = BatchPlan(epochs=2, batch_size=3, grad_accum=2, seed=4)
    steps = plan.steps(10, task_index=1)
    micro = [batch for step in steps for batch in step]
    assert [len(b) for b in micro] == [3, 3, 3, 1] * 2 and [len(s) for s in steps] == [2, 2, 2, 2]
    assert sorted(sum(micro[:4], [])) == list(range(10)) == sorted(sum(micro[4:], []))
    assert sum(micro[:4], []) != sum(micro[4:], [])  # each epoch draws its own order
    assert plan.steps(10, task_index=1) == steps  # deterministic
    assert plan.steps(10, task_index=2) != steps and BatchPlan(epochs=2, batch_size=3, grad_accum=2, seed=5).steps(
        10, task_index=1) != steps
    assert plan.micro_batches_per_epoch(10) == 4


def test_plan_without_shuffle_keeps_file_order_and_caps_steps():
    plan = BatchPlan(epochs=1, batch_size=2, grad_accum=2, max_steps=2, shuffle=False)
    assert plan.steps(11, task_index=0) == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    # accumulation runs across an epoch boundary
    assert BatchPlan(epochs=2, batch_size=2, grad_accum=2, shuffle=False).steps(3, 0) == [[[0, 1], [2]], [[0, 1], [2]]]


@pytest.mark.parametrize(("options", "message"), [
    ({"epochs": 0}, "epochs = 0 is invalid: it must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size = 2.5 is invalid"),
    ({"grad_accum": -1}, "grad_accum = -1 is invalid"),
    ({"max_steps": 0}, "max_steps = 0 is invalid"),
    ({"shuffle": "yes"}, "shuffle = 'yes' is invalid: it must be true or false"),
])
def test_plan_validates_its_fields(options, message):
    with pytest.raises(ConfigError, match=message):
        BatchPlan(**options)


# ---------------------------------------------------------------- train_step
def test_accumulated_micro_batches_give_the_update_of_one_batch():
    one, two = make_tiny_llama(seed=2), make_tiny_llama(seed=2)
    ids = _ids(4, seed=3)
    opt_one = torch.optim.SGD(one.parameters(), lr=0.5)
    opt_two = torch.optim.SGD(two.parameters(), lr=0.5)
    before = copy.deepcopy(one)
    loss_one = train_step(one, opt_one, None, [{"input_ids": ids}], loss_divisor=1, max_grad_norm=None,
                          loss_fn=_lm_loss)
    loss_two = train_step(two, opt_two, None, [{"input_ids": ids[:2]}, {"input_ids": ids[2:]}], loss_divisor=2,
                          max_grad_norm=None, loss_fn=_lm_loss)
    assert loss_two == pytest.approx(loss_one, rel=1e-5)
    assert _max_difference(one, before) > 1e-3  # the step moved the weights
    assert _max_difference(one, two) < 1e-5
    assert all(p.grad is None for p in two.parameters())  # zero_grad(set_to_none=True) after the step


def test_clipping_bounds_the_update_and_the_scheduler_steps():
    model = make_tiny_llama(seed=2)
    before = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    train_step(model, optimizer, scheduler, [{"input_ids": _ids(2, 1)}], loss_divisor=1, max_grad_norm=1e-3,
               loss_fn=_lm_loss)
    # SGD with lr 1: the update is the clipped gradient, of norm max_grad_norm
    update = torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(model.parameters(), before.parameters())))
    assert update.item() == pytest.approx(1e-3, rel=1e-3)
    assert optimizer.param_groups[0]["lr"] == 0.5


class _OwnClip(torch.optim.SGD):
    """An optimizer with its own clipping, recording its calls."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.calls: list[float] = []

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        self.calls.append(max_norm)
        return torch.tensor(0.0)


def test_an_optimizer_with_its_own_clipping_clips():
    model = make_tiny_llama(seed=2)
    before = copy.deepcopy(model)
    optimizer = _OwnClip(model.parameters(), lr=1.0)
    train_step(model, optimizer, None, [{"input_ids": _ids(2, 1)}], loss_divisor=1, max_grad_norm=1e-3,
               loss_fn=_lm_loss)
    assert optimizer.calls == [1e-3]
    update = torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(model.parameters(), before.parameters())))
    assert update.item() > 1e-2  # torch's clipping did not run as well
    train_step(model, optimizer, None, [{"input_ids": _ids(2, 1)}], loss_divisor=1, max_grad_norm=0, loss_fn=_lm_loss)
    assert optimizer.calls == [1e-3]  # 0: clipping off


def test_split_micro_batches_with_a_gradient_reduction_give_the_single_process_step():
    """Two "ranks" each backward one micro-batch; the hook sums their gradients before clipping."""
    single, rank0, rank1 = (make_tiny_llama(seed=6) for _ in range(3))
    ids = _ids(4, seed=8)
    batches = [{"input_ids": ids[:2]}, {"input_ids": ids[2:]}]
    train_step(single, torch.optim.SGD(single.parameters(), lr=1.0), None, batches, loss_divisor=2,
               max_grad_norm=1e-2, loss_fn=_lm_loss)
    backward_micro_batch(rank1, batches[1], 2, _lm_loss)
    seen: list[bool] = []

    def all_reduce(model: torch.nn.Module) -> None:
        seen.append(all(p.grad is not None for p in model.parameters()))
        for p, q in zip(model.parameters(), rank1.parameters()):
            p.grad += q.grad

    train_step(rank0, torch.optim.SGD(rank0.parameters(), lr=1.0), None, batches[:1], loss_divisor=2,
               max_grad_norm=1e-2, loss_fn=_lm_loss, reduce_gradients=all_reduce)
    assert seen == [True]
    assert _max_difference(single, rank0) < 1e-6


@pytest.mark.parametrize("name", ["full", "lora"])
def test_train_step_is_the_plain_loop_bit_for_bit(name):
    """The shared step against the loop written out by hand: same losses and weights, to the last bit."""
    from losia_cl.methods import TaskContext, create_method

    plan = BatchPlan(batch_size=2, grad_accum=2, seed=1).steps(8, task_index=0)
    ids = _ids(8, seed=9)
    ctx = TaskContext(task_index=0, num_tasks=1, num_training_steps=len(plan), seed=0)
    runs = []
    for use_step in (True, False):
        torch.manual_seed(0)
        method = create_method(name, lr=1e-2)
        model = method.prepare(make_tiny_llama(seed=4), ctx)
        optimizer, scheduler = method.build_optimizer(model, ctx)
        losses = []
        for step in plan:
            batches = [{"input_ids": ids[micro]} for micro in step]
            if use_step:
                losses.append(train_step(model, optimizer, scheduler, batches, loss_divisor=len(step),
                                         max_grad_norm=0.5, loss_fn=_lm_loss))
                continue
            total = 0.0
            for batch in batches:
                loss = _lm_loss(model, batch) / len(step)
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(total)
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    (losses_a, weights_a), (losses_b, weights_b) = runs
    assert losses_a == losses_b and losses_a[-1] < losses_a[0]
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))
