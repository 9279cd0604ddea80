"""Retention of general knowledge: the built-in probe, the right-answer rule, and drift from the base."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from losia_cl.errors import DataError
from losia_cl.models.tiny import tiny_llama
from losia_cl.retention.drift import GeneralProbe
from losia_cl.retention.probe import KINDS, ProbeItem, is_right, load_probe
from losia_cl.streams.tokenization import collate_for_training, encode_examples
from losia_cl.streams.types import Example
from losia_cl.streams.types import Task
from losia_cl.trainer.evaluate import Evaluator
from losia_cl.trainer.loss import answer_loss


def test_builtin_probe_has_over_100_distinct_items_of_every_kind():
    items = load_probe()
    assert len(items) >= 100 and len({i.prompt for i in items}) == len(items)
    kinds = Counter(i.kind for i in items)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 20
    assert all(len(a) <= 20 for i in items for a in i.answers)  # short answers


@pytest.mark.parametrize(("prediction", "answers", "right"), [
    ("Paris.", ("Paris",), True), (" paris, the capital", ("Paris",), True), ("Parisian", ("Paris",), False),
    ("42", ("4",), False), ("4\n5", ("4",), True), ("seven days", ("7", "seven"), True), ("", ("a",), False),
    ("The answer is Paris", ("Paris",), False),
])
def test_right_answer_rule(prediction, answers, right):
    assert is_right(prediction, answers) is right


def test_bad_probe_file_names_the_line(tmp_path):
    path = tmp_path / "probe.jsonl"
    path.write_text('{"kind": "fact", "prompt": "a", "answers": ["b"]}\n{"kind": "poem", "prompt": "c", "answers": ["d"]}\n')
    with pytest.raises(DataError, match=r"probe.jsonl:2: kind 'poem'"):
        load_probe(path)


def _train(model, tokenizer, steps: int) -> None:
    examples = [Example(f"Item {i}:", f" value {i % 3}") for i in range(8)]
    batch = collate_for_training(encode_examples(tokenizer, examples, max_length=64), pad_token_id=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        answer_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()


def test_drift_is_exactly_zero_for_the_base_and_positive_after_full_fine_tuning():
    model, tokenizer = tiny_llama(seed=0)
    items = load_probe()[::6]
    # the probe's answers are what the base model says, so the base gets them all right
    probe = Task(name="p", train=(Example("a", "b"),), test=tuple(Example(i.prompt, i.reference) for i in items),
                 metric="accuracy", max_new_tokens=8)
    said = Evaluator(tokenizer, [probe], batch_size=16, max_length=256).generate(model)[0]
    items = [ProbeItem(i.prompt, (s,), i.kind) for i, s in zip(items, said)
             if s.strip() and len(s.strip().splitlines()) == 1]  # one line, as the right-answer rule reads
    probe = GeneralProbe(model, tokenizer, items=items, batch_size=16, max_length=256)
    assert probe.base_right == len(items) > 5
    base = probe.measure(model)
    assert base.kl == 0.0 and base.kept == 1.0 and base.right == len(items)
    _train(model, tokenizer, steps=15)
    after = probe.measure(model)
    assert after.kl > 0.01
    assert after.kept < 1.0 and after.right < len(items)


def test_kept_is_undefined_when_the_base_gets_nothing_right():
    model, tokenizer = tiny_llama(seed=1)
    probe = GeneralProbe(model, tokenizer, items=[ProbeItem("2 + 2 =", ("4",), "arithmetic")], max_length=64)
    point = probe.measure(model)
    assert probe.base_right == 0 and point.kept is None and point.kl == 0.0
