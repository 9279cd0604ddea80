"""Greedy decoding of a left-padded batch, scoring teacher-forced reference answers in the same prefill.

Evaluation wants two things of every test prompt: the model's greedy answer, and the
log-probabilities the model gives the *reference* answer (graded scores, the general probe's
drift).  Both start with a forward pass over the prompt, which costs far more than the few
decoding steps after it, so one pass serves both: each row holds its prompt (left-padded, ending
at column ``W``) followed by its reference tokens (right-padded); position ``W - 1 + k`` predicts
reference token ``k``, and position ``W - 1`` also gives the first generated token.  The decoding
steps then reuse the pass's key/value cache with the reference columns masked out, so the new
tokens see exactly the prompt, as if it had been passed alone.  Position ids follow the real
tokens of each row (``cumsum(attention_mask) - 1``), as in Hugging Face's ``generate``.

Decoding is plain greedy: the argmax of the last position's logits, until a row has emitted EOS
or its own budget of new tokens; rows that have stopped receive the pad id, and the batch stops
when every row has.  No sampling, penalty or other logits processor of a model's
``generation_config`` applies.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from losia_cl.lm_loss import causal_lm, causal_lm_parts


@dataclass(frozen=True)
class DecodedBatch:
    """What :func:`decode_batch` computed for one batch.

    ``tokens``: ``[rows, W + steps]``, each prompt left-padded to ``W`` columns followed by its new
    tokens (pad after a row stopped); ``reference_logprobs[i]``: ``[len(reference_i), vocab]``
    float32 log-softmax at the positions predicting row i's reference tokens (None for a row without
    reference); ``steps``: decoding passes after the prefill.
    """

    tokens: Tensor
    width: int
    reference_logprobs: list[Tensor | None]
    steps: int


def _cache_keyword(module: nn.Module) -> str:
    """The name a model's forward takes its key/value cache by: ``cache`` (transformers >= 5.25), else
    ``past_key_values``."""
    try:
        return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        return "past_key_values"


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _forward(model: nn.Module, parts, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
             cache: Any) -> tuple[Tensor, Any]:
    """Hidden states (or logits, for a model without a separate decoder) and the updated cache."""
    decoder, _ = parts
    module = decoder if decoder is not None else model
    keyword = _cache_keyword(decoder if decoder is not None else causal_lm(model))
    out = module(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                 **({keyword: cache} if cache is not None else {}))
    return (out.last_hidden_state if decoder is not None else out.logits), _cache_of(out)


def _logits(parts, states: Tensor) -> Tensor:
    """Vocabulary logits of hidden ``states`` (already logits for a model without a separate decoder)."""
    _, head = parts
    return states if head is None else head(states)


@torch.no_grad()
def decode_batch(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    budgets: Sequence[int],
    *,
    pad_token_id: int,
    eos_token_id: int | None,
    references: Sequence[Sequence[int] | None] | None = None,
    device: torch.device | None = None,
) -> DecodedBatch:
    """Greedy new tokens for every prompt (at most ``budgets[i]`` for row i), and the log-probabilities of
    each row's ``references[i]`` teacher-forced after its prompt, from one prefill (module docstring)."""
    device = device or next(model.parameters()).device
    refs = list(references) if references is not None else [None] * len(prompts)
    width = max(len(p) for p in prompts)
    extra = max((len(r) for r in refs if r), default=0)
    rows = len(prompts)
    ids = torch.full((rows, width + extra), pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, width + extra), dtype=torch.long)
    for i, (prompt, ref) in enumerate(zip(prompts, refs)):
        ids[i, width - len(prompt):width] = torch.tensor(list(prompt), dtype=torch.long)
        mask[i, width - len(prompt):width] = 1
        if ref:
            ids[i, width:width + len(ref)] = torch.tensor(list(ref), dtype=torch.long)
            mask[i, width:width + len(ref)] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
    parts = causal_lm_parts(model)
    states, cache = _forward(model, parts, ids, mask, positions, None)

    # the reference tokens: position width - 1 + k predicts token k of a row's reference
    reference_logprobs: list[Tensor | None] = [None] * rows
    wanted = [(i, len(ref)) for i, ref in enumerate(refs) if ref]
    if wanted:
        picked = torch.cat([states[i, width - 1:width - 1 + n] for i, n in wanted])
        logprobs = torch.log_softmax(_logits(parts, picked).float(), dim=-1)
        for (i, _), part in zip(wanted, torch.split(logprobs, [n for _, n in wanted])):
            reference_logprobs[i] = part

    # greedy decoding, the reference columns masked out
    budget = torch.tensor(list(budgets), dtype=torch.long, device=device)
    mask[:, width:] = 0
    next_position = mask.sum(-1)  # every row's next token sits right after its real prompt tokens
    token = _logits(parts, states[:, width - 1]).argmax(-1)
    new = [token]
    done = budget <= 1
    if eos_token_id is not None:
        done |= token == eos_token_id
    steps = 0
    while not bool(done.all()):
        mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=device)], dim=1)
        states, cache = _forward(model, parts, token[:, None], mask, next_position[:, None], cache)
        steps += 1
        token = _logits(parts, states[:, -1]).argmax(-1)
        token = torch.where(done, torch.full_like(token, pad_token_id), token)
        new.append(token)
        next_position = next_position + 1
        done = done | (len(new) >= budget)
        if eos_token_id is not None:
            done |= token == eos_token_id
    tokens = torch.cat([ids[:, :width].cpu(), torch.stack(new, dim=1).cpu()], dim=1)
    return DecodedBatch(tokens=tokens, width=width, reference_logprobs=reference_logprobs, steps=steps)


@torch.no_grad()
def reference_logprobs(model: nn.Module, features: Sequence[dict[str, Any]], *, pad_token_id: int,
                       device: torch.device | None = None) -> list[Tensor]:
    """Per training-style feature (``input_ids``/``labels``/``attention_mask``, right-padded together), the
    float32 log-softmax ``[answer tokens, vocab]`` at the positions predicting its answer tokens: the
    teacher-forced pass for rows whose prompt differs from their generation prompt (truncation)."""
    from losia_cl.lm_loss import answer_logits
    from losia_cl.streams.tokenization import collate_for_training

    device = device or next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate_for_training(features, pad_token_id=pad_token_id).items()}
    logits, _ = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    counts = (batch["labels"][:, 1:] != -100).sum(-1).tolist()
    return list(torch.split(torch.log_softmax(logits.float(), dim=-1), counts))
