"""Batched greedy decoding, where the trainer's modules and earlier code import it from (:mod:`losia_cl.decoding`)."""

from __future__ import annotations

from losia_cl.decoding import DecodedBatch, decode_batch, reference_logprobs

__all__ = ["DecodedBatch", "decode_batch", "reference_logprobs"]
