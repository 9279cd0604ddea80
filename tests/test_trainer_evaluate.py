"""Evaluation batches prompts of several tasks together and stops early, without changing a prediction.

The reference is a per-example greedy decode written out here: one prompt at a time, no padding,
no cache, the argmax of the last position's logits until EOS or the task's ``max_new_tokens``.
"""

from __future__ import annotations

import pytest
import torch

from losia_cl.models import load_model
from losia_cl.streams import load_stream
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl import evaluator as evaluate_module
from losia_cl.trainer.evaluate import Evaluator, evaluate_task
from losia_cl.trainer.loss import answer_loss

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def trained():
    """tiny-llama after 30 full fine-tuning steps on three demo tasks: it ends some answers with EOS, not all."""
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-llama")
    tasks = load_stream("demo", num_train=32, num_test=6, seed=0,
                        tasks="category,check,position").tasks  # budgets 6, 4, 6 new tokens
    features = [f for t in tasks for f in encode_examples(tokenizer, t.train, max_length=MAX_LENGTH)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        picked = torch.randint(0, len(features), (8,), generator=generator).tolist()
        batch = collate_for_training([features[i] for i in picked], pad_token_id=pad_token_id(tokenizer))
        answer_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), tokenizer, tasks


@torch.no_grad()
def greedy_alone(model, tokenizer, prompt_ids: list[int], budget: int) -> list[int]:
    """New tokens of one prompt, decoded alone (up to and including EOS)."""
    ids = torch.tensor([prompt_ids])
    new: list[int] = []
    while len(new) < budget:
        token = int(model(input_ids=ids).logits[0, -1].argmax())
        new.append(token)
        if token == tokenizer.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return new


def reference(model, tokenizer, tasks) -> tuple[list[list[str]], list[list[int]]]:
    """Per task: the predictions and the new-token counts of the per-example decode."""
    texts, counts = [], []
    for task in tasks:
        prompts = encode_examples(tokenizer, task.test, max_length=MAX_LENGTH - task.max_new_tokens,
                                  for_generation=True)
        new = [greedy_alone(model, tokenizer, p["input_ids"], task.max_new_tokens) for p in prompts]
        kept = [n[:-1] if n and n[-1] == tokenizer.eos_token_id else n for n in new]
        texts.append([tokenizer.decode(k, skip_special_tokens=True).strip() for k in kept])
        counts.append([len(n) for n in new])
    return texts, counts


@pytest.mark.slow
def test_cross_task_batches_give_the_per_example_predictions(trained):
    model, tokenizer, tasks = trained
    expected, counts = reference(model, tokenizer, tasks)
    ended = [c < t.max_new_tokens for row, t in zip(counts, tasks) for c in row]
    assert any(ended) and not all(ended)  # some rows end with EOS before their budget, some run to it

    evaluator = Evaluator(tokenizer, tasks, batch_size=5, max_length=MAX_LENGTH)  # batches mix tasks and budgets
    evaluations = evaluator.evaluate(model)
    assert [[r["prediction"] for r in e.predictions] for e in evaluations] == expected
    # the single-task path (one task's prompts per batch) gives the same predictions
    for task, evaluation in zip(tasks, evaluations):
        alone = evaluate_task(model, tokenizer, task, batch_size=4, max_length=MAX_LENGTH)
        assert alone.predictions == evaluation.predictions and alone.score == evaluation.score

    # every batch stops once all its rows have ended: its decode steps are its longest row's tokens - 1
    stats = evaluator.last_stats
    new_tokens = {(p.task, p.index): counts[p.task][p.index] for p in evaluator.prompts()}
    order = [(p.task, p.index) for p in evaluator.prompts()]
    batches = [order[i:i + 5] for i in range(0, len(order), 5)]
    assert stats.batches == len(batches) == 4
    assert stats.decode_steps == sum(max(new_tokens[k] for k in b) - 1 for b in batches)
    assert stats.new_tokens == sum(new_tokens.values())
    assert stats.prompts == 18 and stats.prompt_tokens == sum(len(p.ids) for p in evaluator.prompts())


def test_prompts_are_sorted_by_length_and_tokenized_once(trained, monkeypatch):
    model, tokenizer, tasks = trained
    calls = []
    real = evaluate_module.encode_examples
    monkeypatch.setattr(evaluate_module, "encode_examples", lambda *a, **k: calls.append(1) or real(*a, **k))
    evaluator = Evaluator(tokenizer, tasks, batch_size=32, max_length=MAX_LENGTH)
    first = evaluator.evaluate(model)
    second = evaluator.evaluate(model)
    assert len(calls) == len(tasks)  # once per task, not once per stage
    assert first == second
    lengths = [len(p.ids) for p in evaluator.prompts()]
    assert lengths == sorted(lengths)
    assert sorted((p.task, p.index) for p in evaluator.prompts()) == [(t, i) for t in range(3) for i in range(6)]
    assert evaluator.last_stats.batches == 1 and evaluator.last_stats.padded_prompt_tokens == 18 * max(lengths)
