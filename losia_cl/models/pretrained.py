"""Loading a transformers checkpoint (directory or hub id) and the conventions every loaded model gets."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import torch

from .options import LoadOptions

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def dtype_kwargs(dtype: torch.dtype | None) -> dict[str, Any]:
    """``from_pretrained``'s dtype keyword: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers
    from packaging.version import Version

    value: torch.dtype | str = "auto" if dtype is None else dtype
    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: value}


def ensure_pad_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer a pad token (its EOS when it has none) and tell the model's configs about it."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            logger.warning("the tokenizer has neither a pad nor an EOS token; leaving it without a pad token")
            return
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("the tokenizer has no pad token; using its EOS token %r", tokenizer.eos_token)
    pad_id = tokenizer.pad_token_id
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = pad_id


def finalize(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, options: LoadOptions
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Move/cast the model as ``options`` ask, put it in eval mode and set its pad token."""
    if options.dtype is not None and model.dtype != options.dtype:
        model = model.to(dtype=options.dtype)
    model = model.to(device=options.device)
    model.eval()
    ensure_pad_token(model, tokenizer)
    return model, tokenizer


def load_pretrained(
    source: str | os.PathLike[str],
    options: LoadOptions,
    *,
    local_files_only: bool,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``AutoTokenizer`` + ``AutoModelForCausalLM.from_pretrained(source)``, then :func:`finalize`.

    Errors propagate prefixed with the part that failed (``tokenizer:`` /
    ``model:``) so callers can report them.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except Exception as err:  # noqa: BLE001 - transformers raises many kinds; the caller reports them
        raise _PartError("tokenizer", err) from err
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_files_only, **dtype_kwargs(options.dtype)
        )
    except Exception as err:  # noqa: BLE001
        raise _PartError("model", err) from err
    return finalize(model, tokenizer, options)


class _PartError(Exception):
    """Which part of a checkpoint (tokenizer or model) failed to load, and why."""

    def __init__(self, part: str, error: BaseException) -> None:
        self.part = part
        self.error = error
        super().__init__(f"{part}: {summarize(error)}")


def summarize(error: BaseException, limit: int = 300) -> str:
    """A one-line summary of an exception: its type and the first non-empty line of its message."""
    if isinstance(error, _PartError):
        return str(error)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}"
