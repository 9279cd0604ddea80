"""Saved models: each method's trained state loads with plain transformers / peft and gives the in-run logits;
--save-every-task keeps one folder per task, --no-save none; a replaced folder is never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from losia_cl.errors import ConfigError
from losia_cl.methods import TaskContext, create_method
from losia_cl.models.tiny import tiny_llama
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.saved_models import LATEST, SAVED_FILE, ModelSaver, SavedModel, remove_stale_model_folders
from losia_cl.trainer.step import train_step

STEPS = 6


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 259, (4, 12), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _trained(name: str, **options):
    """The tiny model after one task of ``STEPS`` steps of ``name``, as the trainer leaves it (after_task)."""
    model, tokenizer = tiny_llama(seed=0)
    method = create_method(name, lr=1e-2, **options)
    ctx = TaskContext(0, 1, STEPS, 0)
    model = method.prepare(model, ctx)
    optimizer, scheduler = method.build_optimizer(model, ctx)
    model.train()
    for _ in range(STEPS):
        train_step(model, optimizer, scheduler, [_batch()], loss_divisor=1, max_grad_norm=1.0)
    model = method.after_task(model, optimizer, ctx)
    model.eval()
    return method, model, tokenizer


def _load(folder: Path):
    """The saved model loaded the way a user does, with transformers (and peft over the base model)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    kind = SavedModel.read(folder).kind
    if kind == "transformers":
        return kind, AutoModelForCausalLM.from_pretrained(folder)
    base, _ = tiny_llama(seed=0)
    return kind, PeftModel.from_pretrained(base, folder)


@pytest.mark.parametrize("name, options, kind", [
    ("full", {}, "transformers"),
    ("losia", {}, "transformers"),  # LoSiA-Pro layers by default: unpatched before saving
    ("losia", {"losia_options": {"pro": False}}, "transformers"),
    ("lora", {}, "peft"),
    ("dora", {}, "peft"),
    ("pissa", {}, "peft"),  # converted to a LoRA over the unmodified base model
    ("lora", {"per_task": True}, "transformers"),  # merged after the task: a whole model
])
def test_saved_model_loads_with_the_in_run_logits(tmp_path, name, options, kind):
    method, model, tokenizer = _trained(name, **options)
    ids = _batch()["input_ids"]
    with torch.no_grad():
        live = model(input_ids=ids).logits
        base = tiny_llama(seed=0)[0](input_ids=ids).logits
    assert (live - base).abs().max() > 1e-3  # training moved the model
    saver = ModelSaver(tmp_path / name, tmp_path, name, "tiny-llama", enabled=True, every_task=False)
    initial = getattr(method, "initial_adapter", None)
    saver.save(model, tokenizer, 1, "t", initial() if initial else None)
    folder = tmp_path / name / LATEST
    saved_kind, loaded = _load(folder)
    assert saved_kind == kind
    with torch.no_grad():
        again = loaded.eval()(input_ids=ids).logits
    torch.testing.assert_close(again, live, atol=1e-5, rtol=1e-5)
    if kind == "peft":  # only the adapter is stored, not the base weights
        assert not (folder / "model.safetensors").exists() and (folder / "adapter_model.safetensors").exists()
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(folder).encode("héllo") == tokenizer.encode("héllo")


def test_a_replaced_folder_is_never_half_written(tmp_path, monkeypatch):
    """A save that fails midway keeps the previous model as it was and leaves no temporary folder."""
    method, model, tokenizer = _trained("full")
    saver = ModelSaver(tmp_path / "full", tmp_path, "full", "tiny-llama", enabled=True, every_task=False)
    saver.save(model, tokenizer, 1, "a")
    before = {p.name: p.read_bytes() for p in (tmp_path / "full" / LATEST).iterdir()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", broken)
    with pytest.raises(Exception, match="No space left"):
        saver.save(model, tokenizer, 2, "b")
    after = {p.name: p.read_bytes() for p in (tmp_path / "full" / LATEST).iterdir()}
    assert after == before and SavedModel.read(tmp_path / "full" / LATEST).task == "a"
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [LATEST]
    # leftovers of a killed save are cleared at the next start
    (tmp_path / "full" / ".model.0123456789abcdef.tmpdir").mkdir()
    (tmp_path / "full" / ".model.0123456789abcdef.old").mkdir()
    assert len(remove_stale_model_folders(tmp_path / "full")) == 2
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [LATEST]


TASKS = ("category", "position")
SMALL = dict(model="tiny-llama", tasks=TASKS, max_train_examples=8, max_test_examples=4, batch_size=4,
             eval_batch_size=8, max_length=64, progress=False, report=False, checkpoint_every=0, retention=False)


def _folders(method_dir: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(method_dir)) for p in method_dir.rglob(SAVED_FILE))


def test_save_every_task_and_no_save(tmp_path):
    methods = ("losia", "lora")
    every = run_experiment(RunConfig(methods=methods, out=str(tmp_path / "every"), save_every_task=True, **SMALL))
    for method in methods:
        folder = every.out_dir / method
        assert _folders(folder) == ["models/1-category", "models/2-position"]
        results = json.loads((folder / "results.json").read_text())
        assert results["saved_models"] == {"final": "models/2-position",
                                           "tasks": {"category": "models/1-category", "position": "models/2-position"}}
        assert [SavedModel.read(folder / p).stage for p in _folders(folder)] == [1, 2]
    latest = run_experiment(RunConfig(methods=("full",), out=str(tmp_path / "latest"), **SMALL))
    assert _folders(latest.out_dir / "full") == [LATEST]
    assert SavedModel.read(latest.out_dir / "full" / LATEST).task == "position"
    none = run_experiment(RunConfig(methods=("full",), out=str(tmp_path / "none"), save_models=False, **SMALL))
    assert _folders(none.out_dir / "full") == [] and not (none.out_dir / "full" / LATEST).exists()
    assert json.loads((none.out_dir / "full" / "results.json").read_text())["saved_models"] is None


def test_contradictory_save_options_are_refused():
    with pytest.raises(ConfigError, match="contradict"):
        RunConfig(methods=("full",), save_models=False, save_every_task=True)


def test_resume_after_an_interrupted_save_keeps_one_complete_model(tmp_path, monkeypatch):
    """Killed while saving after the first task (a half-written temporary folder left behind): --resume clears it,
    redoes the task end from the checkpoint and ends with the last task's model, as an uninterrupted run does."""
    config = RunConfig(methods=("lora",), out=str(tmp_path / "run"), **{**SMALL, "checkpoint_every": 1})
    real_save = ModelSaver.save

    def killed(self, model, tokenizer, stage, task, initial_adapter=None):
        (self.folder / ".model.0123456789abcdef.tmpdir").mkdir()
        (self.folder / ".model.0123456789abcdef.tmpdir" / "adapter_config.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelSaver, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config)
    monkeypatch.setattr(ModelSaver, "save", real_save)
    resumed = run_experiment(RunConfig(**{**config.__dict__, "resume": True}))
    folder = resumed.out_dir / "lora"
    assert _folders(folder) == [LATEST] and SavedModel.read(folder / LATEST).task == "position"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    straight = run_experiment(RunConfig(**{**config.__dict__, "out": str(tmp_path / "straight")}))
    from safetensors.torch import load_file

    a = load_file(folder / LATEST / "adapter_model.safetensors")
    b = load_file(straight.out_dir / "lora" / LATEST / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_saved_files_follow_the_umask(tmp_path):
    """Every saved file gets the permissions the umask gives (safetensors alone would make some private)."""
    import os

    method, model, tokenizer = _trained("full")
    old = os.umask(0o027)
    try:
        ModelSaver(tmp_path / "full", tmp_path, "full", "tiny-llama", enabled=True, every_task=False).save(
            model, tokenizer, 1, "a")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "full" / LATEST).iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o640}, modes


@pytest.mark.parametrize("final", ["../other/model", "/etc", "models/../../x", ""])
def test_results_refuse_saved_paths_outside_the_method_folder(tmp_path, final):
    from losia_cl.errors import DataError
    from losia_cl.results import read_results

    run = run_experiment(RunConfig(methods=("lora",), out=str(tmp_path / "run"), **{**SMALL, "tasks": ("check",)}))
    path = run.out_dir / "lora" / "results.json"
    data = json.loads(path.read_text())
    assert read_results(path).saved_models == {"final": "model", "tasks": {}}
    data["saved_models"]["final"] = final
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="saved_models.final"):
        read_results(path)
