"""Avalanche's stock strategies refuse a LoSiA optimizer in one line; the warnings a user cannot act on are held back."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

pytest.importorskip("avalanche")

from avalanche.training import Naive  # noqa: E402

from losia_cl import LoSiAConfig, build_losia  # noqa: E402
from losia_cl.avalanche import as_benchmark  # noqa: E402
from losia_cl.avalanche.stock import quiet_known_warnings  # noqa: E402
from losia_cl.errors import ConfigError  # noqa: E402
from losia_cl.models import load_model  # noqa: E402
from losia_cl.streams import load_stream  # noqa: E402


def test_naive_with_a_losia_optimizer_points_to_causal_lm_strategy():
    model, tokenizer = load_model("tiny-llama")
    benchmark = as_benchmark(load_stream("demo", num_train=4, num_test=2, tasks=["check"]), tokenizer, max_length=64)
    strategy = Naive(model=model, optimizer=build_losia(model, LoSiAConfig(lr=1e-3)),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=2, train_epochs=1)
    with pytest.raises(ConfigError) as info:
        strategy.train(benchmark.train_stream[0])
    message = str(info.value)
    assert "\n" not in message and "cannot train with a LoSiA optimizer" in message
    assert "losia_cl.avalanche.CausalLMStrategy(" in message


def test_other_optimizers_go_through_update_optimizer_unchanged():
    from avalanche.training.templates.observation_type import batch_observation

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    optimizer = torch.optim.SGD(model[0].parameters(), lr=0.1)
    params = dict(model.named_parameters())
    assert batch_observation.update_optimizer(optimizer, params, None, reset_state=True) == params
    assert len(optimizer.param_groups[0]["params"]) == 4  # Avalanche added the second layer, as it does


def test_known_warnings_are_held_back_and_others_shown():
    from avalanche._annotations import deprecated

    @deprecated(0.7, "switch to pre_adapt and post_adapt")
    def update():
        return 1

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with quiet_known_warnings():
            assert update() == 1
            warnings.warn("no QP solver found on your system, ...", UserWarning)
            warnings.warn("something the user should see", RuntimeWarning)
    assert [(w.category, str(w.message)) for w in shown] == [(RuntimeWarning, "something the user should see")]


def test_importing_losia_cl_avalanche_shows_no_warning():
    result = subprocess.run([sys.executable, "-W", "default", "-c", "import losia_cl.avalanche"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "QP solver" not in result.stderr and "Warning" not in result.stderr, result.stderr
