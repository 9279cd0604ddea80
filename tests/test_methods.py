"""The methods: options documented and validated, the registry, adapter merging, LoRA's matched rank."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_llama

from losia_cl.errors import ConfigError, UnknownNameError
from losia_cl.fields import documented
from losia_cl.methods import METHODS, TaskContext, create_method, method_names, option_help, options_markdown
from losia_cl.methods.base import register_method
from losia_cl.methods.dense import DenseMethodDefaults
from losia_cl.methods.peft_adapter import matched_rank
from losia_cl.optim import LoSiAConfig, build_losia
from losia_cl.trainer.step import train_step

ROOT = Path(__file__).resolve().parents[1]
CTX = TaskContext(task_index=0, num_tasks=1, num_training_steps=4, seed=0)


def _lm_loss(model, batch):
    return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss


def test_docs_list_every_option_of_every_method():
    assert options_markdown() in (ROOT / "docs" / "methods.md").read_text()


@pytest.mark.parametrize("name", method_names())
def test_every_option_is_documented_and_the_defaults_are_valid(name):
    method = create_method(name)
    assert method.name == name
    assert set(option_help(name)) == {f.name for f in fields(METHODS.get(name))}
    assert all(text.strip() for text in option_help(name).values())
    assert json.loads(json.dumps(method.options())) == method.options()


def test_an_unknown_option_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        create_method("lora", rnak=4, alpah=2)
    assert str(info.value) == ("method lora: unknown options 'alpah', 'rnak'; valid options: "
                               + ", ".join(option_help("lora")))


@pytest.mark.parametrize(("name", "options", "message"), [
    ("full", {"lr": 0}, "full.lr = 0 is invalid: it must be a number > 0"),
    ("full", {"lr": "fast"}, "full.lr = 'fast' is invalid"),
    ("full", {"weight_decay": -0.1}, "full.weight_decay = -0.1 is invalid"),
    ("lora", {"rank": 0}, "lora.rank = 0 is invalid"),
    ("dora", {"rank": 2.5}, "dora.rank = 2.5 is invalid"),
    ("pissa", {"dropout": 1.0}, "pissa.dropout = 1.0 is invalid"),
    ("lora", {"per_task": "yes"}, "lora.per_task = 'yes' is invalid: it must be true or false"),
    ("lora", {"warmup_ratio": 1}, "lora.warmup_ratio = 1 is invalid"),
    ("lora", {"rank_factor": 0}, "lora.rank_factor = 0 is invalid"),
    ("losia", {"period": 0}, "losia.period = 0 is invalid"),
    ("losia-pro", {"rank_factor": 1.5}, "losia-pro.rank_factor = 1.5 is invalid"),
    ("losia", {"losia_options": {"schedule": "round-robin"}}, "LoSiAConfig.schedule = 'round-robin' is invalid"),
    ("losia", {"losia_options": {"seed": 3}}, "losia.losia_options: unknown LoSiAConfig field(s) ['seed']"),
])
def test_bad_option_values_name_the_method_and_the_option(name, options, message):
    with pytest.raises(ConfigError) as info:
        create_method(name, **options)
    assert message in str(info.value)


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(UnknownNameError) as info:
        create_method("sgd")
    assert info.value.known == method_names()


def test_registration_needs_a_documented_dataclass_and_a_new_name():
    @dataclass
    class Undocumented(DenseMethodDefaults):
        lr: float = 1e-3

    with pytest.raises(TypeError, match=r"option\(s\) \['lr'\] lack metadata\['help'\]"):
        register_method("undocumented")(Undocumented)

    @dataclass
    class Again(DenseMethodDefaults):
        lr: float = documented("Learning rate.", 1e-3)

    with pytest.raises(ValueError, match="method 'full' is already registered"):
        register_method("full")(Again)
    assert "undocumented" not in METHODS


@pytest.mark.parametrize("name", ["lora", "dora", "pissa"])
def test_adapter_merges_give_the_adapter_models_outputs(name):
    base = make_tiny_llama(seed=3)
    untouched = copy.deepcopy(base)
    method = create_method(name, rank=4, lr=2e-2, per_task=True)
    model = method.prepare(base, CTX)
    optimizer, scheduler = method.build_optimizer(model, CTX)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(5))
    for _ in range(3):
        train_step(model, optimizer, scheduler, [{"input_ids": ids}], loss_divisor=1, max_grad_norm=1.0,
                   loss_fn=_lm_loss)
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        before = untouched(input_ids=ids).logits
    assert not torch.allclose(expected, before, atol=1e-4)  # the adapter learned something
    # the effective weights the stability metrics read, put into a plain copy of the base model
    plain = copy.deepcopy(untouched)
    blocks = plain.model.layers
    records = method.target_weights(model)
    assert len(records) == 7 * len(blocks)
    for record in records:
        path = record.name.split(".", 2)[2]  # "layers.<i>.<path in block>"
        blocks[record.layer].get_submodule(path).weight.data.copy_(record.weight)
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-5)
        merged = method.after_task(model, optimizer, CTX)  # per_task=True: merge and unload
        assert not hasattr(merged, "peft_config")
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-5)


@pytest.mark.parametrize("rank_factor", [1 / 8, 1 / 4, 1 / 2])
def test_matched_rank_is_the_lora_rank_closest_to_losias_trainable_count(rank_factor):
    model = make_tiny_llama(seed=0, hidden=64, intermediate=96)
    losia = build_losia(copy.deepcopy(model), LoSiAConfig(rank_factor=rank_factor))
    target = losia.num_trainable_parameters()
    losia.close()
    rank = matched_rank(model, rank_factor)

    def lora_count(r: int) -> int:
        lora = create_method("lora", rank=r).prepare(copy.deepcopy(model), CTX)
        return sum(p.numel() for p in lora.parameters() if p.requires_grad)

    distance = {r: abs(lora_count(r) - target) for r in (rank - 1, rank, rank + 1) if r >= 1}
    assert min(distance, key=distance.get) == rank, (target, distance)
    default = create_method("lora", rank_factor=rank_factor)  # rank=None: the matched rank
    assert default.resolved_rank(model) == rank


def test_losia_describes_the_resolved_config_of_each_task():
    method = create_method("losia", rank_factor=1 / 4, losia_options={"schedule": "sync"})
    model = make_tiny_llama(seed=1)
    ctx = TaskContext(task_index=2, num_tasks=3, num_training_steps=8, seed=5)
    optimizer, _ = method.build_optimizer(method.prepare(model, ctx), ctx)
    record = method.describe(optimizer)
    assert json.loads(json.dumps(record)) == record
    config = record["config"]
    # 8 steps: T = max(1, min(min_period, 8 // 16))
    assert (config["rank_factor"], config["schedule"], config["seed"], config["period"]) == (0.25, "sync", 7, 1)
    optimizer.close()
