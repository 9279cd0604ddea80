"""GGUF files -> plain (dequantized, trainable, saveable) transformers models.

transformers reads a ``.gguf`` file with ``from_pretrained(dir, gguf_file=name)``
(this needs the ``gguf`` package) and dequantizes its tensors to float32, but
the result is flagged as quantized: ``save_pretrained`` refuses it and
trainers treat it as a quantized model.  :func:`dequantized_copy` rebuilds a
plain model of the same class from the config (without its
``quantization_config``) and the state dict, and checks that both give the
same logits.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from losia_cl.files import open_regular

from .errors import ModelLoadError
from .options import LoadOptions
from .pretrained import dtype_kwargs, finalize

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: The first bytes of every GGUF file.
GGUF_MAGIC = b"GGUF"
#: transformers' "no limit" value of ``model_max_length`` (anything above means "not set").
_UNSET_MAX_LENGTH = 10**12


def load_gguf_raw(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model (float32, still flagged as GGUF-quantized) and tokenizer transformers reads from ``path``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    with open_regular(path) as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelLoadError(f"{path} does not start with the GGUF magic bytes {GGUF_MAGIC!r}: not a GGUF file")
    start = time.perf_counter()
    logger.info("reading GGUF file %s (%.1f MB) with transformers", path, path.stat().st_size / 1e6)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **dtype_kwargs(torch.float32))
    logger.info("read and dequantized %s in %.1f s", path.name, time.perf_counter() - start)
    return model, tokenizer


def probe_input(vocab_size: int, length: int = 24) -> torch.Tensor:
    """A fixed batch of token ids (same every call) to compare two models' logits on."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, vocab_size, (2, length), generator=generator)


@torch.no_grad()
def max_logit_diff(a: PreTrainedModel, b: PreTrainedModel) -> float:
    """Largest absolute logit difference between two models on :func:`probe_input` (CPU, eval mode)."""
    ids = probe_input(a.config.vocab_size)
    la = a.eval()(ids.to(a.device)).logits.float().cpu()
    lb = b.eval()(ids.to(b.device)).logits.float().cpu()
    return float((la - lb).abs().max())


def dequantized_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A plain (not quantized) model of ``model``'s class with the same config, weights and generation config.

    Raises :class:`ModelLoadError` if the weights do not transfer one to one,
    if tied embeddings do not stay tied, or if the logits differ.
    """
    config_dict = model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(model.config).from_dict(config_dict)
    plain = type(model)(config)
    result = plain.load_state_dict(model.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"rebuilding a plain {type(model).__name__} from the GGUF model did not match its weights: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
        out, inp = plain.get_output_embeddings(), plain.get_input_embeddings()
        if out is not None and out.weight.data_ptr() != inp.weight.data_ptr():
            raise ModelLoadError("the rebuilt model's input and output embeddings are not tied as its config says")
    if getattr(model, "generation_config", None) is not None:
        plain.generation_config = model.generation_config
    plain.eval()
    diff = max_logit_diff(model, plain)
    if diff != 0.0:
        raise ModelLoadError(f"the rebuilt plain model's logits differ from the GGUF model's by up to {diff:g}")
    return plain


def fix_gguf_tokenizer(tokenizer: PreTrainedTokenizerBase, config: object) -> None:
    """Restore what a GGUF round trip loses: ``model_max_length`` (set from ``max_position_embeddings``)."""
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions and (tokenizer.model_max_length is None or tokenizer.model_max_length > _UNSET_MAX_LENGTH):
        tokenizer.model_max_length = int(max_positions)


def load_gguf(path: Path, options: LoadOptions) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A ``.gguf`` file as a plain model and tokenizer (see the module docstring), finalized per ``options``."""
    if not Path(path).is_file():
        raise ModelLoadError(f"GGUF file {path} does not exist")
    raw, tokenizer = load_gguf_raw(Path(path))
    model = dequantized_copy(raw)
    del raw
    fix_gguf_tokenizer(tokenizer, model.config)
    return finalize(model, tokenizer, options)
