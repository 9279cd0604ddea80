"""O-LoRA: its loss against a direct computation, earlier adapters merged and frozen, the loss at work, a run."""

from __future__ import annotations

import pytest
import torch

from losia_cl.errors import ConfigError
from losia_cl.methods import RegularizedMethod, TaskContext, TaskData, create_method
from losia_cl.models import load_model
from losia_cl.streams import load_stream
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl.trainer import RunConfig
from losia_cl.trainer.extras import TrainingExtras
from losia_cl.trainer.step import train_step

NO_DATA = TaskData(0, lambda indices: {}, lambda model, batch: torch.zeros(()))


def _ctx(index: int) -> TaskContext:
    return TaskContext(index, 3, 4, seed=0)


def _adapter(model, part: str) -> dict[str, torch.Tensor]:
    """The current adapter's ``lora_A``/``lora_B`` weights by state-dict key (without the part's name)."""
    return {k.replace(f".{part}.default", ""): v.detach().clone() for k, v in model.state_dict().items()
            if f".{part}.default." in k}


def _randomize_b(model, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def test_the_loss_is_the_summed_absolute_products_with_every_earlier_a_plus_l2():
    model, _ = load_model("tiny-llama", seed=0)
    method = create_method("olora", rank=2, lambda_orth=0.7, lambda_l2=0.3)
    assert isinstance(method, RegularizedMethod)
    earlier = []
    for task in range(2):
        model = method.prepare(model, _ctx(task))
        assert method.penalty(model) is not None  # λ2 > 0: the L2 term applies from the first task
        earlier.append(_adapter(model, "lora_A"))
        _randomize_b(model, task)
        method.consolidate(model, NO_DATA, _ctx(task))
        model = method.after_task(model, None, _ctx(task))
    model = method.prepare(model, _ctx(2))
    _randomize_b(model, 5)
    new_a = _adapter(model, "lora_A")
    assert set(new_a) == set(earlier[0]) == set(earlier[1]) and len(new_a) == 14  # 7 linear layers x 2 blocks
    orthogonality = sum((old[k] @ new_a[k].T).abs().sum() for old in earlier for k in new_a)
    l2 = sum(p.square().sum() for n, p in model.named_parameters()
             if ".lora_A.default." in n or ".lora_B.default." in n)
    expected = 0.7 * orthogonality + 0.3 * l2
    penalty = method.penalty(model)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    assert orthogonality.item() > 0.1 and l2.item() > 0.1  # both terms count
    penalty.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all(".lora_A.default." in n or ".lora_B.default." in n for n in with_grad)
    assert method.describe(None)["kept_a_bytes"] == 2 * 4 * sum(v.numel() for v in new_a.values())


def test_earlier_adapters_are_merged_and_stay_frozen():
    model, tokenizer = load_model("tiny-llama", seed=0)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    method = create_method("olora", rank=2, lr=1e-2)
    model = method.prepare(model, _ctx(0))
    _randomize_b(model, 1)
    a, b = _adapter(model, "lora_A"), _adapter(model, "lora_B")
    scaling = 2.0  # alpha = 2 * rank by default
    method.consolidate(model, NO_DATA, _ctx(0))
    model = method.after_task(model, None, _ctx(0))
    key = "model.layers.1.mlp.down_proj"
    peft_key = f"base_model.model.{key}.weight"
    merged = model.state_dict()[f"{key}.weight"]
    torch.testing.assert_close(merged, base[f"{key}.weight"] + scaling * b[peft_key] @ a[peft_key])
    model = method.prepare(model, _ctx(1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A.default." in n or ".lora_B.default." in n for n in trainable)
    optimizer, scheduler = method.build_optimizer(model, _ctx(1))
    examples = encode_examples(tokenizer, load_stream("demo").tasks[1].train[:4], max_length=48)
    extras = TrainingExtras(method, share=None, per_task=1, seed=0)
    extras.add_penalty(model)
    train_step(model, optimizer, scheduler, [collate_for_training(examples, pad_token_id=pad_token_id(tokenizer))],
               loss_divisor=1, max_grad_norm=1.0)
    assert torch.equal(model.state_dict()[f"base_model.model.{key}.base_layer.weight"], merged)


def _orthogonality_after_training(lambda_orth: float) -> float:
    model, tokenizer = load_model("tiny-llama", seed=0)
    method = create_method("olora", rank=2, lr=2e-2, lambda_orth=lambda_orth, min_lr_ratio=1.0)
    model = method.prepare(model, _ctx(0))
    method.consolidate(model, NO_DATA, _ctx(0))
    model = method.after_task(model, None, _ctx(0))
    model = method.prepare(model, _ctx(1))
    optimizer, scheduler = method.build_optimizer(model, _ctx(1))
    extras = TrainingExtras(method, share=None, per_task=1, seed=0)
    examples = encode_examples(tokenizer, load_stream("demo").tasks[1].train[:8], max_length=48)
    batch = collate_for_training(examples, pad_token_id=pad_token_id(tokenizer))
    for _ in range(8):
        extras.add_penalty(model)
        train_step(model, optimizer, scheduler, [batch], loss_divisor=1, max_grad_norm=None)
    with torch.no_grad():
        return method.orthogonality(model).item()


def test_the_orthogonality_loss_drives_the_new_adapter_away_from_the_old_subspace():
    free, orthogonal = _orthogonality_after_training(1e-9), _orthogonality_after_training(1.0)
    assert orthogonal < 0.7 * free


@pytest.mark.parametrize(("options", "message"), [
    ({"per_task": False}, "olora.per_task = False is invalid: it must be true (a new adapter per task)"),
    ({"lambda_orth": -1}, "olora.lambda_orth = -1 is invalid: it must be a finite number >= 0"),
    ({"lambda_l2": float("nan")}, "olora.lambda_l2 = nan is invalid"),
])
def test_bad_olora_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(model="tiny-llama", methods=("olora",), method_options={"olora": options})
