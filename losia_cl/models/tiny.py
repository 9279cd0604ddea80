"""``tiny-llama``: a small randomly initialised LLaMA with a byte-level tokenizer, built in-process.

For tests and smoke runs: no file, no network.  Its conventions mirror the
embedded SmolLM2-135M-Instruct model so code that works on one works on the
other: ids 0/1/2 are ``<|endoftext|>`` (unk), ``<|im_start|>`` (BOS) and
``<|im_end|>`` (EOS, also the pad token), nothing is added on encode (no
automatic BOS), the chat template is ChatML, input and output embeddings are
tied.  The 256 byte values follow as ids 3..258 (id = 3 + byte), so any text
encodes and decodes losslessly, one token per UTF-8 byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from losia_cl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

#: Special tokens, in id order.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = SPECIAL_TOKENS
#: ChatML, as SmolLM2-Instruct uses, without a default system message.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
#: Vocabulary size of the byte tokenizer: 3 special tokens + 256 bytes.
BYTE_VOCAB_SIZE = len(SPECIAL_TOKENS) + 256


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ``ByteLevel`` pre-tokenization emits)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def byte_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (ByteLevel BPE without merges): one token per UTF-8 byte, ids 3 + byte."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = _bytes_to_unicode()
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({byte_chars[b]: len(SPECIAL_TOKENS) + b for b in range(256)})
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@dataclass(frozen=True)
class TinyLlamaConfig:
    """Size of a ``tiny-llama`` model (see :func:`tiny_llama`)."""

    num_layers: int = 2
    hidden_size: int = 64
    intermediate_size: int = 128
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "tie_word_embeddings":
                if not isinstance(value, bool):
                    raise ConfigError(f"tie_word_embeddings must be True or False, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})"
            )


def tiny_llama(
    seed: int = 0,
    num_layers: int = 2,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    *,
    max_position_embeddings: int = 1024,
    tie_word_embeddings: bool = True,
    init_std: float | None = None,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A randomly initialised float32 ``LlamaForCausalLM`` on the CPU (eval mode) and its byte tokenizer.

    The same ``seed`` and sizes give bit-identical weights; the global torch
    RNG state is left as it was.  The vocabulary is :data:`BYTE_VOCAB_SIZE`
    (259).  Cast or move the model afterwards (``model.to(...)``), or use
    ``load_model("tiny-llama", dtype=..., device=...)``.

    Weights are drawn with standard deviation ``init_std``, by default
    ``hidden_size ** -0.5`` (0.125 at hidden 64) rather than transformers' 0.02,
    which suits wide models: with 0.02, tied embeddings of norm ~0.16 against a
    final RMS-normalized state of norm 8 cap every logit near ±1.3, so a method
    that trains only the decoder blocks' linear layers (LoSiA with its default
    frozen embeddings and norms) cannot make the model confident of any token,
    whatever its budget.
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if init_std is not None and (isinstance(init_std, bool) or not isinstance(init_std, (int, float))
                                 or not init_std > 0):
        raise ConfigError(f"init_std must be a positive number or None, got {init_std!r}")
    sizes = TinyLlamaConfig(
        num_layers=num_layers,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
    )
    tokenizer = byte_tokenizer(model_max_length=sizes.max_position_embeddings)
    config = LlamaConfig(
        vocab_size=BYTE_VOCAB_SIZE,
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.num_layers,
        num_attention_heads=sizes.num_heads,
        num_key_value_heads=sizes.num_kv_heads,
        max_position_embeddings=sizes.max_position_embeddings,
        tie_word_embeddings=sizes.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rms_norm_eps=1e-5,
        initializer_range=sizes.hidden_size**-0.5 if init_std is None else init_std,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.eval()
    return model, tokenizer
