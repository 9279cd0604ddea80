"""The answer-token loss, computing vocabulary logits only where the loss needs them."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100


def causal_lm(model: nn.Module) -> nn.Module:
    """The ``*ForCausalLM`` module inside an optional peft wrapper."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def causal_lm_parts(model: nn.Module) -> tuple[nn.Module | None, nn.Module | None]:
    """``(decoder, output head)`` of a causal LM (inside an optional peft wrapper), or ``(None, None)`` for a
    model without a separate decoder (its forward then gives the logits)."""
    lm = causal_lm(model)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if decoder is None or head is None or decoder is lm:
        return None, None
    return decoder, head


def answer_logits(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Logits at the positions that predict an answer token, and those tokens.

    Position ``t`` predicts token ``t + 1``; only positions whose next label is not -100 are
    projected onto the vocabulary, so no [batch, length, vocab] tensor is ever built.
    Models without ``get_decoder()`` fall back to the full forward.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    decoder, head = causal_lm_parts(model)
    if decoder is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
        return logits[keep], targets[keep]
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, :-1]
    return head(hidden[keep]), targets[keep]


def answer_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Mean cross-entropy over the answer tokens of ``batch`` (``input_ids``, ``attention_mask``, ``labels``)."""
    logits, targets = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return answer_cross_entropy(logits, targets)


def answer_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of answer-position ``logits`` [N, vocab] against ``targets`` [N] (0 when N = 0)."""
    if targets.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets)

