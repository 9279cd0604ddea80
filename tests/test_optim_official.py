"""Reference mode (``envelope='official'``) follows the official LoSiA code's learning rates and trajectory.

Three checks: the schedule against the official formulas written out plainly below; a 3-layer toy
against the official run's fingerprint recorded in ``tests/data/official_toy.json`` (by
``python tests/official_toy.py DIR``); and, when ``LOSIA_OFFICIAL_DIR`` names a checkout of
``KlozeWang/LoSiA``, a replay of the official code itself.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from losia_cl import ConfigError, LoSiAConfig, build_losia
from losia_cl.optim.lr import losia_scheduler
from losia_cl.optim.schedule import official_lr_factor

import official_toy
from conftest import make_tiny_llama


def official_formula(s: int, r: int | None, n: int, t: int, ratio: float, m: float) -> float:
    """The official per-matrix learning-rate factor, from its three rules (r = None: a dense parameter)."""
    w = int(n * ratio)  # the official warm-up length truncates
    if s < w:  # the first warm-up wins over any re-warm
        return s / w
    if r is not None:
        r = 0 if r < 0 else r  # before its first re-localization a matrix counts from 0
        if s - r < t:  # the ramp times the cosine frozen at progress r / (N - W)
            return (s - r) / t * (m + (1 - m) * (1 + math.cos(math.pi * r / (n - w))) / 2)
    return m + (1 - m) * (1 + math.cos(math.pi * (s - w) / (n - w))) / 2  # progress (s - W) / (N - W)


@pytest.mark.parametrize(("n", "t", "ratio", "m"), [(60, 5, 0.1, 0.1), (60, 8, 0.1, 0.1), (37, 4, 0.25, 0.0),
                                                    (100, 3, 0.0, 0.5), (30, 50, 0.1, 0.1), (23, 1, 0.3, 1.0)])
def test_official_factor_matches_the_formulas_over_steps_and_restarts(n, t, ratio, m):
    restarts = [None, -1, 0, 1, t, 2 * t, int(n * ratio), n // 2, n - t, n - 1]
    for r in restarts:
        for s in range(max(0, r or 0), n + 1):
            assert official_lr_factor(s, r, n, t, ratio, m) == pytest.approx(official_formula(s, r, n, t, ratio, m),
                                                                             abs=1e-12), (s, r)


def test_the_three_rules_by_hand():
    # N = 60, W = 6, T = 5, min 0.1: a re-localization at boundary 5 lies inside the warm-up, which wins
    assert official_lr_factor(5, 5, 60, 5, 0.1, 0.1) == pytest.approx(5 / 6)
    # re-localized at 20: ramp 2/5 times the cosine frozen at 20/54 (not at (20 - 6)/54)
    assert official_lr_factor(22, 20, 60, 5, 0.1, 0.1) == pytest.approx(
        0.4 * (0.1 + 0.45 * (1 + math.cos(math.pi * 20 / 54))))
    # the last step stays above min_lr_ratio: progress 53/54
    last = official_lr_factor(59, None, 60, 5, 0.1, 0.1)
    assert last == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 53 / 54))) and last > 0.1 + 1e-4
    # W = int(0.1 * 37) = 3 (rounding would give 4)
    assert official_lr_factor(3, None, 37, 5, 0.1, 0.1) == pytest.approx(1.0)


def test_the_scheduler_gives_each_matrix_its_official_rate(batch):
    """Through a real run: every target group runs at lr x the formula at its own last re-localization."""
    n, t, lr = 30, 4, 0.3
    model = make_tiny_llama(seed=3)
    config = LoSiAConfig.reference(rank_factor=1 / 4, period=t, lr=lr, output_rank_factor=0.25, pro=False)
    opt = build_losia(model, config)
    scheduler = losia_scheduler(opt, n)
    targets = [g for g in opt.param_groups if g["losia"]]
    dense = next(g for g in opt.param_groups if not g["losia"])
    restarts = set()
    for step in range(14):
        for group in targets:
            last = int(opt.state[group["params"][0]]["last_relocalization"])
            restarts.add(last)
            assert opt.learning_rate(group) == pytest.approx(lr * official_formula(step, last, n, t, 0.1, 0.1),
                                                             abs=1e-12), (step, group["name"])
        assert dense["lr"] == pytest.approx(lr * official_formula(step, None, n, t, 0.1, 0.1), abs=1e-12)
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        scheduler.step()
        opt.zero_grad()
    assert restarts == {-1, 4, 8, 12}  # head slot 0 at 4, layers at 8 and 12: the ramps were exercised
    opt.close()


def test_official_envelope_is_validated_and_not_the_default():
    assert LoSiAConfig().envelope == "current" and LoSiAConfig.reference().envelope == "official"
    with pytest.raises(ConfigError, match="LoSiAConfig.envelope"):
        LoSiAConfig(envelope="official")  # the official ramps start at 0
    with pytest.raises(ConfigError, match="LoSiAConfig.envelope"):
        LoSiAConfig(envelope="cosine")


def test_trainer_schedulers_refuse_the_official_envelope():
    from losia_cl.hf import config_from_args
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="unused", report_to=[])
    with pytest.raises(ConfigError, match="losia_scheduler"):
        config_from_args(args, LoSiAConfig.reference())


@pytest.fixture(scope="module")
def recorded():
    return json.loads(official_toy.FIXTURE.read_text())


def test_toy_trajectory_matches_the_recorded_official_run(recorded):
    assert recorded["toy"]["period"] == official_toy.PERIOD and recorded["toy"]["steps"] == official_toy.STEPS
    matched, total, worst = official_toy.compare_to_fingerprint(official_toy.run_ours(), recorded)
    assert total == 3 * 7 * 4  # 21 matrices, each re-localized at 4 of the 12 slot ends
    assert matched == total
    assert worst < 1e-4  # per parameter: change sums within 1e-4 of its sum of |change|


def test_the_recorded_official_run_tells_the_envelopes_apart(recorded):
    # the envelope that reference mode used before: ramp x current lr, warm-up x ramp, progress over N - W - 1
    ours = official_toy.run_ours(official_toy.reference_config(envelope="current"))
    matched, total, worst = official_toy.compare_to_fingerprint(ours, recorded)
    assert matched < total // 2 and worst > 1e-2


OFFICIAL_DIR = os.environ.get("LOSIA_OFFICIAL_DIR")


@pytest.mark.skipif(
    not (OFFICIAL_DIR and (Path(OFFICIAL_DIR) / "losia_torch" / "adamw.py").is_file()),
    reason="the official LoSiA code is not here: set LOSIA_OFFICIAL_DIR to a checkout of KlozeWang/LoSiA",
)
@pytest.mark.parametrize("period", [5, 8])  # T = 8 > W = 6: the ramp from step 0 shows after the warm-up
def test_replay_of_the_official_code(period):
    ours = official_toy.run_ours(official_toy.reference_config(period=period))
    official = official_toy.run_official(Path(OFFICIAL_DIR), ours, period)
    matched, total, delta = official_toy.agreement(ours, official)
    assert total == 7 * (60 // period)  # 7 matrices re-localize at each slot end
    assert matched == total
    assert delta < 1e-5
