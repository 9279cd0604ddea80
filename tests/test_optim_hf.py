"""LoSiA with the Hugging Face Trainer: the schedule of TrainingArguments drives LoSiA step by step."""

from __future__ import annotations

import gc

import pytest
import torch

from losia_cl import ConfigError, LoSiA, LoSiAConfig, build_losia

from conftest import make_tiny_llama

transformers = pytest.importorskip("transformers")


class _Fixed(torch.utils.data.Dataset):
    def __init__(self, n: int = 8):
        generator = torch.Generator().manual_seed(1)
        self.ids = torch.randint(0, 128, (n, 16), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _args(tmp_path, **overrides):
    from transformers import TrainingArguments

    options = dict(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=2, learning_rate=1e-2,
        lr_scheduler_type="cosine", warmup_steps=2, logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=True, disable_tqdm=True, seed=0,
    )
    options.update(overrides)
    return TrainingArguments(**options)


class _AppliedLr(transformers.TrainerCallback):
    """Records, before every optimizer step, the learning rate LoSiA applies to each target matrix."""

    def __init__(self):
        self.applied: list[list[float]] = []

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        optimizer = optimizer.optimizer  # accelerate's wrapper
        assert isinstance(optimizer, LoSiA)
        optimizer.register_step_pre_hook(
            lambda opt, *_: self.applied.append([opt.learning_rate(g) for g in opt.param_groups if g["losia"]])
        )


@pytest.mark.parametrize("pro", [False, True])
def test_trainer_logs_the_learning_rate_losia_applies(tmp_path, pro):
    from losia_cl.hf import LoSiATrainer

    model = make_tiny_llama(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recorder = _AppliedLr()
    trainer = LoSiATrainer(
        model=model, args=_args(tmp_path), train_dataset=_Fixed(), callbacks=[recorder],
        losia_config=LoSiAConfig(rank_factor=1 / 4, period=10, pro=pro),
    )
    trainer.train()
    logged = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert len(recorder.applied) == 6 and len(logged) == 6
    # every target matrix runs at the Trainer's rate (no re-localization in 6 steps of T = 10)
    applied = [lrs[0] for lrs in recorder.applied]
    assert all(len(set(lrs)) == 1 for lrs in recorder.applied)
    assert logged == pytest.approx(applied, rel=1e-12)
    # warm-up over 2 steps from 0, then cosine from 1e-2 to 0 over the remaining 4
    assert applied == pytest.approx([0.0, 5e-3, 1e-2, 1e-2 * (1 + 0.5 ** 0.5) / 2, 5e-3, 1e-2 * (1 - 0.5 ** 0.5) / 2])
    assert trainer.losia.config.lr == 1e-2 and trainer.losia.config.eps == 1e-8  # from TrainingArguments
    assert trainer.losia.clip_count == 6  # Trainer clipped through LoSiA.clip_grad_norm_ at every step
    trainer.losia.close()
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved and all("layers" in n and "norm" not in n for n in moved)


def test_create_optimizer_and_scheduler_needs_a_step_count(tmp_path):
    from losia_cl.hf import create_optimizer_and_scheduler

    with pytest.raises(ConfigError, match="max_steps"):
        create_optimizer_and_scheduler(make_tiny_llama(), _args(tmp_path, max_steps=-1, num_train_epochs=1))
    opt, scheduler = create_optimizer_and_scheduler(make_tiny_llama(), _args(tmp_path), LoSiAConfig(period=3))
    assert isinstance(opt, LoSiA) and opt.config.period == 3 and opt.param_groups[0]["lr"] == 0.0  # warm-up from 0
    opt.close()


def test_trainer_with_losia_as_optimizer_class_names_the_helpers(tmp_path):
    from transformers import Trainer

    trainer = Trainer(
        model=make_tiny_llama(), args=_args(tmp_path), train_dataset=_Fixed(),
        optimizer_cls_and_kwargs=(LoSiA, {"config": LoSiAConfig()}),
    )
    with pytest.raises(ConfigError, match="LoSiATrainer"):
        trainer.train()


@pytest.mark.parametrize("pro", [False, True])
def test_a_dropped_optimizer_no_longer_masks_gradients(batch, pro):
    model = make_tiny_llama(seed=4)
    reference = make_tiny_llama(seed=4)
    opt = build_losia(model, LoSiAConfig(rank_factor=1 / 8, period=2, pro=pro))
    # one step so that every matrix is outside its recording slot or re-localized: the hooks are live
    model(input_ids=batch, labels=batch).loss.backward()
    opt.step()
    opt.zero_grad()
    del opt
    gc.collect()
    for p in model.parameters():
        p.requires_grad_(True)
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3)
    reference.load_state_dict(model.state_dict())  # same weights (LoSiA's step changed some)
    model(input_ids=batch, labels=batch).loss.backward()
    reference(input_ids=batch, labels=batch).loss.backward()
    expected = dict(reference.named_parameters())
    checked = 0
    for name, p in model.named_parameters():
        if name in expected:  # LoSiA-Pro's gradient sinks are extra parameters
            assert p.grad is not None, name
            torch.testing.assert_close(p.grad, expected[name].grad, rtol=1e-5, atol=1e-7, msg=name)
            checked += 1
    assert checked == len(expected)
    assert (model.model.layers[1].mlp.down_proj.weight.grad != 0).float().mean() > 0.9
    adamw.step()


def test_import_losia_cl_does_not_import_transformers():
    import subprocess
    import sys

    code = "import losia_cl, sys; losia_cl.LoSiAConfig; print('transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False"], result.stderr


class _Deltas(transformers.TrainerCallback):
    """Before every optimizer step: each target matrix's last re-localization and weight; after it: the change."""

    def __init__(self):
        self.relocalized: list[list[int]] = []
        self.deltas: list[dict[str, torch.Tensor]] = []

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        optimizer = optimizer.optimizer
        before: dict[str, torch.Tensor] = {}

        def pre(opt, *_):
            targets = [g for g in opt.param_groups if g["losia"]]
            self.relocalized.append([int(opt.state[g["params"][0]]["last_relocalization"]) for g in targets])
            before.update({g["name"]: g["params"][0].detach().clone() for g in targets})

        def post(opt, *_):
            self.deltas.append({g["name"]: g["params"][0].detach() - before[g["name"]]
                                for g in opt.param_groups if g["losia"]})

        optimizer.register_step_pre_hook(pre)
        optimizer.register_step_post_hook(post)


def test_trainer_logs_the_re_warmed_learning_rate_not_the_schedulers(tmp_path):
    from losia_cl.hf import LoSiATrainer

    period = 2
    recorder = _Deltas()
    trainer = LoSiATrainer(
        model=make_tiny_llama(seed=0), args=_args(tmp_path, max_steps=8, lr_scheduler_type="constant", warmup_steps=0),
        train_dataset=_Fixed(), callbacks=[recorder],
        losia_config=LoSiAConfig(rank_factor=1 / 4, period=period, schedule="sync"),
    )
    trainer.train()
    trainer.losia.close()
    logged = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert len(logged) == len(recorder.relocalized) == 8
    # the re-warm ramp min(1, (s - r + 1) / T) after each matrix's last re-localization r, on the constant 1e-2
    expected = []
    for step, lasts in enumerate(recorder.relocalized):
        rates = [1e-2 * (1.0 if r < 0 else min(1.0, (step - r + 1) / period)) for r in lasts]
        assert len(set(rates)) == 1  # sync: every matrix re-localizes at the same step
        expected.append(rates[0])
    assert expected == pytest.approx([1e-2, 1e-2, 5e-3, 1e-2, 1e-2, 1e-2, 5e-3, 1e-2])
    assert logged == pytest.approx(expected, rel=1e-12)
    # the first step after a re-localization starts Adam afresh (zeroed moments, step 1), so every trained
    # entry moves by lr * |g| / (|g| + eps): the weights themselves show the rate applied, half the scheduler's
    for step in (2, 6):
        moved = torch.cat([d[d != 0].abs() for d in recorder.deltas[step].values()])
        assert moved.numel() > 0
        assert moved.median().item() == pytest.approx(logged[step], rel=1e-3)
        assert logged[step] < trainer.lr_scheduler.get_last_lr()[0] == 1e-2
