"""One trainer's behaviour, two front doors: ``losia-cl run`` and the Avalanche strategy give the same run.

Same seed, tiny model, 3-task stream, method and budget.  Besides the score matrix (often all
zeros on a random tiny model) the comparison covers what is sensitive to every update: the loss
of every optimizer step, every generated prediction at every stage, and the weight-stability and
subnet-overlap summaries (computed from the weights and the subnets after every task).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("avalanche")

from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

from losia_cl.avalanche import (  # noqa: E402
    CausalLMStrategy,
    as_benchmark,
    stability_metrics,
    subnet_overlap_metrics,
    task_score_metrics,
)
from losia_cl.models import load_model  # noqa: E402
from losia_cl.trainer import RunConfig, run_experiment  # noqa: E402
from losia_cl.trainer.experiment import load_run_stream  # noqa: E402

TASKS = ("category", "position", "check")


def _json(value):
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("method, overrides", [
    # LoSiA, shuffling off on both sides, 8 steps per task
    ("losia", dict(shuffle=False, max_train_examples=32)),
    # seeded shuffle, gradient accumulation across an epoch boundary, an adapter initialised from the global RNG
    ("lora", dict(shuffle=True, max_train_examples=12, epochs=2, grad_accum=2)),
    ("losia-pro", dict(shuffle=False, max_train_examples=16, max_steps=3)),
    ("full", dict(shuffle=True, max_train_examples=16, max_grad_norm=0.5)),
    # GaLore through galore_torch, its projector refreshed at every other step
    ("galore", dict(shuffle=False, max_train_examples=16, max_steps=3,
                    method_options={"galore": {"update_proj_gap": 2}})),
])
def test_avalanche_strategy_reproduces_losia_cl_run(tmp_path: Path, method: str, overrides: dict):
    # max_length 128: the whole prompt fits the byte tokenizer, so the listed words the answers copy are seen
    config = RunConfig(
        model="tiny-llama", methods=(method,), tasks=TASKS, max_test_examples=6, batch_size=4, eval_batch_size=8,
        max_length=128, lr={method: 1e-2}, device="cpu", out=str(tmp_path / "run"), progress=False, report=False,
        checkpoint_every=0, measure_every_task=True, stability=True, **overrides,  # the strategy measures after every task
    )
    reference = run_experiment(config).results[method]

    torch.manual_seed(config.seed)  # as run_experiment's model loader does
    model, tokenizer = load_model(config.model, dtype=torch.float32, device=torch.device("cpu"))
    benchmark = as_benchmark(load_run_stream(config), tokenizer, max_length=config.max_length,
                             chat_template=config.chat_template)
    overlap, stability = subnet_overlap_metrics()[0], stability_metrics()[0]
    strategy = CausalLMStrategy.from_config(
        config, model=model, tokenizer=tokenizer, eval_every=0,
        evaluator=EvaluationPlugin(task_score_metrics(), overlap, stability, loggers=[]),
    )
    strategy.train(benchmark.train_stream, eval_streams=[benchmark.test_stream])
    results = strategy.results()

    assert results["scores"] == reference["scores"]
    assert results["metrics"] == reference["metrics"]
    assert results["steps"] == reference["steps"]
    assert results["losses"] == reference["losses"]  # every optimizer step, bit for bit
    assert results["trainable_parameters"] == reference["trainable_parameters"]
    for stage in range(1, len(TASKS) + 1):
        for index, task in enumerate(TASKS):
            path = tmp_path / "run" / method / "predictions" / f"stage{stage}-{task}.jsonl"
            expected = [json.loads(line) for line in path.read_text().splitlines()]
            assert strategy.evaluations["test"][stage][index].predictions == expected
    assert _json(stability.result()) == reference["stability"]
    assert _json(overlap.result()) == reference["subnet_overlap"]
    assert (reference["subnet_overlap"] is not None) == method.startswith("losia")

    # and something was learned: the weights moved (LoSiA's 8-step tasks spend 3 steps scoring), the later
    # tasks' losses went down
    assert reference["stability"]["stages"][-1]["mean"]["delta_rel_norm"] > 0.005
    if method == "losia":
        assert all(reference["losses"][t][-1] < reference["losses"][t][0] for t in TASKS[1:])
