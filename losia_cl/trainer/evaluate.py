"""Greedy, batched generation on a task's test split, scored by the task's metric."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from losia_cl.metrics.scorers import get_scorer
from losia_cl.streams.tokenization import collate_for_generation, decode_generated, encode_examples, pad_token_id
from losia_cl.streams.types import Example, Task

if TYPE_CHECKING:
    from losia_cl.distributed.context import DistContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEvaluation:
    """A task's score (0–1) and one record per test example."""

    task: str
    score: float
    predictions: list[dict[str, Any]]


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_length: int,
    chat_template: bool = False,
    device: torch.device | None = None,
    dist: DistContext | None = None,
) -> list[str]:
    """Greedy generations (at most ``max_new_tokens`` tokens) for the prompts of ``examples``, in their order.

    Prompts keep their last ``max_length - max_new_tokens`` tokens and are left-padded in batches of
    ``batch_size`` (sorted by length to waste little padding).

    With ``dist`` (several processes) the same batches are formed and dealt out round-robin, each
    rank generates its batches, and the predictions are gathered back in order on every rank, so
    the result equals the one-process generation.
    """
    device = device or next(model.parameters()).device
    features = encode_examples(
        tokenizer, examples, max_length=max(1, max_length - max_new_tokens),
        chat_template=chat_template, for_generation=True,
    )
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    pad = pad_token_id(tokenizer)
    predictions: list[str] = [""] * len(examples)
    was_training = model.training
    model.eval()
    try:
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        for members in batches if dist is None else dist.shard(batches):
            batch = collate_for_generation([features[i] for i in members], pad_token_id=pad)
            input_ids = batch["input_ids"].to(device)
            output = model.generate(
                input_ids=input_ids, attention_mask=batch["attention_mask"].to(device),
                max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=pad, eos_token_id=tokenizer.eos_token_id,
            )
            texts = decode_generated(tokenizer, output.cpu(), prompt_width=input_ids.shape[1])
            for index, text in zip(batch["index"], texts):
                predictions[index] = text
    finally:
        model.train(was_training)
    if dist is not None and dist.enabled:
        mine = {i: predictions[i] for members in dist.shard(batches) for i in members}
        for theirs in dist.gather_objects(mine):
            for i, text in theirs.items():
                predictions[i] = text
    return predictions


def evaluate_task(
    model: nn.Module,
    tokenizer: Any,
    task: Task,
    *,
    batch_size: int,
    max_length: int,
    chat_template: bool = False,
    device: torch.device | None = None,
    dist: DistContext | None = None,
) -> TaskEvaluation:
    """Generate greedily for every test prompt of ``task`` (:func:`generate_answers`) and score the predictions.

    Each prediction record holds ``index``, ``prompt``, ``prediction``, ``reference`` and the example's own
    ``score`` (the task metric on that example alone).
    """
    examples = task.test
    predictions = generate_answers(
        model, tokenizer, examples, max_new_tokens=task.max_new_tokens, batch_size=batch_size,
        max_length=max_length, chat_template=chat_template, device=device, dist=dist,
    )
    scorer = get_scorer(task.metric)
    references = [ex.answer for ex in examples]
    sources = [ex.prompt for ex in examples]
    score = float(scorer(predictions, references, sources))
    records = [
        {"index": i, "prompt": ex.prompt, "prediction": pred, "reference": ex.answer,
         "score": float(scorer([pred], [ex.answer], [ex.prompt]))}
        for i, (ex, pred) in enumerate(zip(examples, predictions))
    ]
    return TaskEvaluation(task.name, score, records)
