"""The answer-token loss, where the trainer's modules and earlier code import it from (:mod:`losia_cl.lm_loss`)."""

from __future__ import annotations

from losia_cl.lm_loss import (
    IGNORE_INDEX,
    answer_cross_entropy,
    answer_logits,
    answer_loss,
    causal_lm,
    causal_lm_parts,
)

__all__ = ["IGNORE_INDEX", "answer_cross_entropy", "answer_logits", "answer_loss", "causal_lm", "causal_lm_parts"]
