"""Graded scores: the mean answer-token log-likelihood equals a direct per-token computation."""

from __future__ import annotations

import math

import pytest
import torch

from losia_cl.models.tiny import tiny_llama
from losia_cl.streams.tokenization import encode_prompt, encode_answer
from losia_cl.streams.types import Example
from losia_cl.trainer.loglik import answer_loglik

EXAMPLES = [Example("Items: cat dog\nAnswer:", "dog"), Example("2 + 2 =", " 4"),
            Example("A long prompt about many different things\nAnswer:", "a much longer answer")]


def direct_loglik(model, tokenizer, examples) -> float:
    """Per example, one unpadded forward; log p of every answer token (EOS included), pooled over tokens."""
    total, count = 0.0, 0
    for ex in examples:
        prompt, answer = encode_prompt(tokenizer, ex.prompt), encode_answer(tokenizer, ex.answer)
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        for k, token in enumerate(answer):
            total += float(logp[len(prompt) + k - 1, token])
            count += 1
    return total / count


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_mean_answer_loglik_equals_the_direct_computation(batch_size):
    model, tokenizer = tiny_llama(seed=3)
    value = answer_loglik(model, tokenizer, EXAMPLES, batch_size=batch_size, max_length=256)
    assert value == pytest.approx(direct_loglik(model, tokenizer, EXAMPLES), abs=1e-5)
    assert value < 0 and math.isfinite(value)


def test_training_on_the_answers_raises_their_loglik():
    model, tokenizer = tiny_llama(seed=0)
    before = answer_loglik(model, tokenizer, EXAMPLES, batch_size=4, max_length=256)
    from losia_cl.streams.tokenization import collate_for_training, encode_examples
    from losia_cl.trainer.loss import answer_loss

    batch = collate_for_training(encode_examples(tokenizer, EXAMPLES, max_length=256), pad_token_id=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(10):
        answer_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = answer_loglik(model, tokenizer, EXAMPLES, batch_size=4, max_length=256)
    assert after > before + 0.5
    assert model.training  # answer_loglik restores the mode it found


@pytest.mark.slow
def test_a_run_records_the_graded_matrix_and_the_probe(tmp_path):
    from dataclasses import replace

    from losia_cl.streams import load_stream
    from losia_cl.trainer import RunConfig, run_experiment

    config = RunConfig(model="tiny-llama", methods=("full",), tasks=("category", "position"), max_train_examples=16,
                       max_test_examples=4, max_length=64, lr={"full": 3e-3}, out=str(tmp_path / "run"),
                       progress=False, report=False, measure_every_task=True, stability=True)
    results = run_experiment(config).results["full"]
    loglik = results["loglik_scores"]
    assert len(loglik) == 3 and all(len(row) == 2 for row in loglik)
    model, tokenizer = tiny_llama(seed=0)
    stream = load_stream("demo", tasks=["category", "position"])  # the run keeps the first 4 test examples
    base_row = [answer_loglik(model, tokenizer, task.test[:4], batch_size=32, max_length=64) for task in stream]
    assert loglik[0] == pytest.approx(base_row, abs=1e-5)  # row 0 is the untouched base model
    assert loglik[1][0] > loglik[0][0]  # training on category made its answers more likely
    assert results["loglik_metrics"]["bwt"] == pytest.approx(loglik[2][0] - loglik[1][0])
    retention = results["retention"]
    assert retention["items"] >= 100 and len(retention["kl"]) == 3
    assert retention["kl"][0] == 0.0 and retention["kl"][2] > retention["kl"][1] > 0.0
    assert [stage["stage"] for stage in results["stability"]["stages"]] == ["after category", "after position"]
    # by default the probe and the stability analysis run after the last task only (the matrices stay complete)
    last = run_experiment(replace(config, out=str(tmp_path / "last"), measure_every_task=False)).results["full"]
    assert last["retention"]["kl"][1] is None and last["retention"]["kl"][2] == pytest.approx(retention["kl"][2])
    assert [stage["stage"] for stage in last["stability"]["stages"]] == ["after position"]
    assert last["scores"] == results["scores"] and last["loglik_scores"] == results["loglik_scores"]
    # without stability (the default) no spectrum is taken, and nothing else changes
    off = run_experiment(replace(config, out=str(tmp_path / "off"), measure_every_task=False, stability=False))
    assert off.results["full"]["stability"] is None and "stability_reference" not in off.timings
    assert off.results["full"]["scores"] == results["scores"]
    assert off.results["full"]["retention"]["kl"] == last["retention"]["kl"]
