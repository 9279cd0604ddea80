r"""Drift from the base model on the general probe, measured after every stage.

Two numbers per stage:

* **KL drift** — the mean, over every position that predicts a token of a probe item's reference
  continuation, of ``KL(p_base ‖ p_current) = Σ_v p_base(v) · (log p_base(v) − log p_current(v))`` (nats),
  both models teacher-forced on the same sequence: the probe prompt followed by the reference answer
  (with a leading space, as a plain-text continuation; without it under a chat template) and EOS.
  The reference, not the model's own output, is the continuation, so every stage is measured on the same
  tokens.  It is exactly 0 for the base model itself.
* **kept** — of the probe items the base model answers right (greedy, at most 8 new tokens, judged by
  :func:`~losia_cl.retention.probe.is_right`), the share the current model still answers right
  (``None`` when the base model gets none right).

The base model's log-probabilities (positions × vocabulary, float32, on the CPU: about 100 MB for the
built-in probe on SmolLM2's 49k vocabulary) and its right answers are taken once, before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from losia_cl.retention.probe import ProbeItem, is_right, load_probe
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl.streams.types import Example, Task
from losia_cl.trainer.evaluate import Evaluator
from losia_cl.trainer.loss import answer_logits

#: tokens generated per probe prompt when judging answers.
PROBE_NEW_TOKENS = 8


@dataclass(frozen=True)
class RetentionPoint:
    """Drift of one model from the base on the probe (see the module docstring)."""

    kl: float
    kept: float | None
    right: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GeneralProbe:
    """The base model's reference on the probe; :meth:`measure` compares any later model with it."""

    def __init__(
        self,
        base_model: nn.Module,
        tokenizer: Any,
        *,
        items: Sequence[ProbeItem] | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        chat_template: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.items = tuple(items) if items is not None else load_probe()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.chat_template = chat_template
        self.device = device
        space = "" if chat_template else " "
        features = encode_examples(
            tokenizer, [Example(item.prompt, space + item.reference) for item in self.items],
            max_length=max_length, chat_template=chat_template,
        )
        probe_task = Task(name="general-probe", train=(Example(self.items[0].prompt, self.items[0].reference),),
                          test=tuple(Example(item.prompt, item.reference) for item in self.items),
                          metric="accuracy", max_new_tokens=PROBE_NEW_TOKENS)
        self._evaluator = Evaluator(tokenizer, [probe_task], batch_size=batch_size, max_length=max_length,
                                    chat_template=chat_template)
        pad = pad_token_id(tokenizer)
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        self._batches = [
            collate_for_training([features[i] for i in order[s:s + batch_size]], pad_token_id=pad)
            for s in range(0, len(order), batch_size)
        ]
        self._base_logprobs = [lp.cpu() for lp in self._logprobs(base_model)]
        self._base_right = self._right(base_model)

    @property
    def base_right(self) -> int:
        """How many probe items the base model answers right."""
        return sum(self._base_right)

    @torch.no_grad()
    def _logprobs(self, model: nn.Module) -> list[torch.Tensor]:
        device = self.device or next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            out = []
            for batch in self._batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                logits, _ = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
                out.append(F.log_softmax(logits.float(), dim=-1))
            return out
        finally:
            model.train(was_training)

    def _right(self, model: nn.Module) -> list[bool]:
        predictions = self._evaluator.generate(model, self.device)[0]
        return [is_right(prediction, item.answers) for prediction, item in zip(predictions, self.items)]

    def measure(self, model: nn.Module) -> RetentionPoint:
        """KL drift and kept share of ``model`` against the base."""
        total = 0.0
        positions = 0
        for base, current in zip(self._base_logprobs, self._logprobs(model)):
            base = base.to(current.device)
            total += float(F.kl_div(current, base, log_target=True, reduction="sum"))
            positions += base.shape[0]
        right = self._right(model)
        kept = sum(r and b for r, b in zip(right, self._base_right))
        return RetentionPoint(
            kl=total / positions,
            kept=kept / self.base_right if self.base_right else None,
            right=sum(right),
        )
