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

from losia_cl.evaluator import Evaluator
from losia_cl.retention.probe import ProbeItem, is_right, load_probe
from losia_cl.streams.types import Example, Task

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
    """The base model's reference on the probe; :meth:`measure` compares any later model with it.

    One forward pass over the probe prompts gives both numbers: the teacher-forced reference
    continuations are scored in the prefill of the greedy generation (:mod:`losia_cl.decoding`).
    """

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
        probe_task = Task(name="general-probe", train=(Example(self.items[0].prompt, self.items[0].reference),),
                          test=tuple(Example(item.prompt, space + item.reference) for item in self.items),
                          metric="accuracy", max_new_tokens=PROBE_NEW_TOKENS)
        self._evaluator = Evaluator(tokenizer, [probe_task], batch_size=batch_size, max_length=max_length,
                                    chat_template=chat_template, references=True)
        said, logprobs = self._evaluator.generate_and_score(base_model, device, score=_keep_logprobs)
        self._base_logprobs: list[torch.Tensor] = logprobs[0]
        self._base_right = self._judge(said[0])

    @property
    def base_right(self) -> int:
        """How many probe items the base model answers right."""
        return sum(self._base_right)

    def base_point(self) -> RetentionPoint:
        """The base model's own point (KL 0, all its right answers kept), without a pass over the probe."""
        return RetentionPoint(kl=0.0, kept=1.0 if self.base_right else None, right=self.base_right)

    def _judge(self, predictions: list[str]) -> list[bool]:
        return [is_right(prediction, item.answers) for prediction, item in zip(predictions, self.items)]

    def measure(self, model: nn.Module) -> RetentionPoint:
        """KL drift and kept share of ``model`` against the base."""

        def drift(task: int, index: int, logprobs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
            base = self._base_logprobs[index].to(logprobs.device)
            return float(F.kl_div(logprobs, base, log_target=True, reduction="sum")), base.shape[0]

        said, scored = self._evaluator.generate_and_score(model, self.device, score=drift)
        total = sum(value[0] for value in scored[0])
        positions = sum(value[1] for value in scored[0])
        right = self._judge(said[0])
        kept = sum(r and b for r, b in zip(right, self._base_right))
        return RetentionPoint(
            kl=total / positions,
            kept=kept / self.base_right if self.base_right else None,
            right=sum(right),
        )


def _keep_logprobs(task: int, index: int, logprobs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logprobs.cpu()
