"""EWC: the diagonal Fisher against a batched reference, the penalty's shape, huge λ holding the weights, runs."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from losia_cl.errors import ConfigError
from losia_cl.methods import RegularizedMethod, TaskContext, TaskData, create_method
from losia_cl.models import load_model
from losia_cl.streams import load_stream
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.extras import TrainingExtras
from losia_cl.trainer.loss import answer_loss
from losia_cl.trainer.step import train_step

MAX_LENGTH = 48


@pytest.fixture(scope="module")
def setup():
    model, tokenizer = load_model("tiny-llama", seed=0)
    stream = load_stream("demo")
    features = {t.name: encode_examples(tokenizer, t.train[:16], max_length=MAX_LENGTH) for t in stream}
    return model, tokenizer, features


def _data(features, tokenizer) -> TaskData:
    pad = pad_token_id(tokenizer)
    return TaskData(len(features), lambda idx: collate_for_training([features[i] for i in idx], pad_token_id=pad),
                    answer_loss)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _restore(model, snapshot) -> None:
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(snapshot[n])


def _reference_fisher(model, features, tokenizer, indices) -> dict[str, torch.Tensor]:
    """One padded forward of all examples; each example's answer-token cross-entropy differentiated on its own."""
    batch = collate_for_training([features[i] for i in indices], pad_token_id=pad_token_id(tokenizer))
    model.eval()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    params = [p for _, p in model.named_parameters()]
    total = [torch.zeros_like(p) for p in params]
    for row in range(len(indices)):
        keep = targets[row] != -100
        loss = F.cross_entropy(logits[row][keep], targets[row][keep])
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc += g.square()
    model.train()
    return {n: t / len(indices) for (n, _), t in zip(model.named_parameters(), total)}


def test_the_fisher_is_the_mean_of_squared_per_example_gradients(setup):
    model, tokenizer, features = setup
    method = create_method("ewc", fisher_examples=5)
    assert isinstance(method, RegularizedMethod)
    method.consolidate(model, _data(features["category"], tokenizer), TaskContext(0, 2, 4, seed=3))
    state = method.state_dict()
    indices = torch.randperm(16, generator=torch.Generator().manual_seed(3 * 1_000_003 + 7_919))[:5].tolist()
    reference = _reference_fisher(model, features["category"], tokenizer, indices)
    assert method.describe(None)["fisher_examples"] == 5
    assert set(state) == {f"fisher.{n}" for n in reference} | {f"anchor.{n}" for n in reference}
    for name, expected in reference.items():
        torch.testing.assert_close(state[f"fisher.{name}"], expected, rtol=1e-4, atol=1e-10)
    biggest = max(float(v.max()) for v in reference.values())
    assert biggest > 1e-4  # a real signal, not zeros on both sides
    # a different sample of examples gives a different Fisher
    other = create_method("ewc", fisher_examples=5)
    other.consolidate(model, _data(features["category"], tokenizer), TaskContext(0, 2, 4, seed=4))
    key = "fisher.model.embed_tokens.weight"
    assert not torch.equal(other.state_dict()[key], state[key])


def test_fishers_add_up_over_tasks_and_the_anchor_follows_the_last_task(setup):
    model, tokenizer, features = setup
    start = _snapshot(model)
    first = create_method("ewc", fisher_examples=4)
    first.consolidate(model, _data(features["category"], tokenizer), TaskContext(0, 3, 4, seed=0))
    second = create_method("ewc", fisher_examples=4)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.add_(0.01)
    second.consolidate(model, _data(features["position"], tokenizer), TaskContext(1, 3, 4, seed=0))
    both = create_method("ewc", fisher_examples=4)
    _restore(model, start)
    both.consolidate(model, _data(features["category"], tokenizer), TaskContext(0, 3, 4, seed=0))
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.add_(0.01)
    both.consolidate(model, _data(features["position"], tokenizer), TaskContext(1, 3, 4, seed=0))
    name = "model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(both.state_dict()[f"fisher.{name}"],
                               first.state_dict()[f"fisher.{name}"] + second.state_dict()[f"fisher.{name}"])
    assert torch.equal(both.state_dict()[f"anchor.{name}"], start[name] + 0.01)
    assert both.describe(None)["fisher_bytes"] == 4 * sum(p.numel() for p in model.parameters())
    _restore(model, start)


def test_the_penalty_is_zero_at_the_anchor_and_grows_quadratically(setup):
    model, tokenizer, features = setup
    start = _snapshot(model)
    small, big = create_method("ewc", lam=10.0, fisher_examples=4), create_method("ewc", lam=40.0, fisher_examples=4)
    assert small.penalty(model) is None  # nothing consolidated yet
    for method in (small, big):
        method.consolidate(model, _data(features["category"], tokenizer), TaskContext(0, 2, 4, seed=0))
    assert small.penalty(model).item() == 0.0
    weight = model.model.layers[1].self_attn.q_proj.weight
    fisher = small.state_dict()["fisher.model.layers.1.self_attn.q_proj.weight"]
    values = []
    for delta in (1e-2, 2e-2):
        with torch.no_grad():
            weight.copy_(start["model.layers.1.self_attn.q_proj.weight"] + delta)
        values.append(small.penalty(model).item())
        assert values[-1] == pytest.approx(0.5 * 10.0 * fisher.sum().item() * delta**2, rel=1e-3)
    assert values[1] == pytest.approx(4 * values[0], rel=1e-3) and values[0] > 0
    assert big.penalty(model).item() == pytest.approx(4 * values[1], rel=1e-5)
    penalty = small.penalty(model)
    penalty.backward()  # its gradient is λ F (θ − θ*)
    torch.testing.assert_close(weight.grad, 10.0 * fisher * 2e-2, rtol=1e-3, atol=1e-12)
    weight.grad = None
    _restore(model, start)


def _train(model, method, tokenizer, features, steps: int) -> None:
    extras = TrainingExtras(method, share=None, per_task=1, seed=0)
    model = method.prepare(model, TaskContext(1, 2, steps, seed=0))
    optimizer, scheduler = method.build_optimizer(model, TaskContext(1, 2, steps, seed=0))
    pad = pad_token_id(tokenizer)
    for step in range(steps):
        rows = [(2 * step + k) % len(features) for k in range(2)]
        extras.add_penalty(model)
        train_step(model, optimizer, scheduler, [collate_for_training([features[i] for i in rows], pad_token_id=pad)],
                   loss_divisor=1, max_grad_norm=None)


def test_a_huge_lambda_keeps_the_weights_at_the_anchor(setup):
    model, tokenizer, features = setup
    start = _snapshot(model)
    drift = {}
    for lam in (1e-6, 1e9):
        _restore(model, start)
        method = create_method("ewc", lr=3e-3, lam=lam, fisher_examples=16, min_lr_ratio=1.0)
        method.consolidate(model, _data(features["category"], tokenizer), TaskContext(0, 2, 4, seed=0))
        fisher = {k.removeprefix("fisher."): v for k, v in method.state_dict().items() if k.startswith("fisher.")}
        _train(model, method, tokenizer, features["position"], steps=6)
        important = {n: f > f.flatten().quantile(0.9) for n, f in fisher.items() if f.numel() > 1000}
        drift[lam] = max(float((p.detach() - start[n])[important[n]].abs().max())
                         for n, p in model.named_parameters() if n in important)
    _restore(model, start)
    assert drift[1e-6] > 0.01  # six Adam steps of 3e-3 move the free weights
    assert drift[1e9] < 0.25 * drift[1e-6]


@pytest.mark.parametrize(("options", "message"), [
    ({"lam": 0}, "ewc.lam = 0 is invalid: it must be a finite number > 0"),
    ({"lam": float("inf")}, "ewc.lam = inf is invalid"),
    ({"fisher_examples": 0}, "ewc.fisher_examples = 0 is invalid: it must be an integer from 1 to 1,000,000"),
    ({"fisher_examples": True}, "ewc.fisher_examples = True is invalid"),
])
def test_bad_ewc_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(model="tiny-llama", methods=("ewc",), method_options={"ewc": options})


TINY = dict(model="tiny-llama", tasks=("category", "position", "successor"), max_train_examples=6,
            max_test_examples=2, batch_size=2, eval_batch_size=4, max_length=MAX_LENGTH, progress=False,
            report=False, retention=False, checkpoint_every=1)


def test_an_ewc_run_records_its_fisher_and_penalty(tmp_path):
    config = RunConfig(out=str(tmp_path), methods=("ewc",), method_options={"ewc": {"fisher_examples": 3,
                                                                                    "lr": 1e-3}}, **TINY)
    results = run_experiment(config).results["ewc"]
    record = results["method_record"]
    parameters = results["total_parameters"]
    assert [record[t]["fisher_examples"] for t in TINY["tasks"]] == [3, 3, 0]  # the last task's is never used
    assert all(record[t]["fisher_bytes"] == 4 * parameters for t in TINY["tasks"])
    assert record["category"]["penalty_at_task_end"] is None
    assert record["position"]["penalty_at_task_end"] > 0 and record["successor"]["penalty_at_task_end"] > 0
    assert json.loads((tmp_path / "ewc" / "results.json").read_text())["method_options"]["lam"] == 1e4
