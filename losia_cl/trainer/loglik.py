"""Graded scores: the teacher-forced log-likelihood of reference answers.

Exact-match scores jump between 0 and 1; the log-likelihood of the reference answer moves smoothly as a
model learns and forgets, so it shows forgetting that generation scores hide (a task whose answers are
still likely but no longer the greedy choice).  A task's value is the mean, over every answer token of
its examples (the closing EOS included), of ``log p(token | prompt, earlier answer tokens)`` in nats:
``−(Σ_batches CE_batch · n_batch) / Σ n_batch``, where ``CE_batch`` is the trainer's answer-token loss
(:func:`~losia_cl.lm_loss.answer_cross_entropy`) over the ``n_batch`` answer tokens of a batch.
Sequences are built exactly as for training (same truncation), so the value is minus the training loss
the model would have on those examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from losia_cl.lm_loss import answer_cross_entropy, answer_logits
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl.streams.types import Example


@torch.no_grad()
def answer_loglik(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int,
    max_length: int,
    chat_template: bool = False,
    device: torch.device | None = None,
) -> float:
    """Mean log-likelihood per answer token (nats, ≤ 0) of the reference answers of ``examples``."""
    device = device or next(model.parameters()).device
    features = encode_examples(tokenizer, examples, max_length=max_length, chat_template=chat_template)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    pad = pad_token_id(tokenizer)
    total = 0.0
    count = 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            batch = collate_for_training([features[i] for i in order[start:start + batch_size]], pad_token_id=pad)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, targets = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
            n = int(targets.numel())
            total += float(answer_cross_entropy(logits, targets)) * n
            count += n
    finally:
        model.train(was_training)
    return -total / count if count else 0.0
