"""What one benchmarked training step is made of: the config, the model, the method, the loss, the device sync.

Shared by the single-process benchmark (:mod:`losia_cl.bench`) and the data-parallel one
(:mod:`losia_cl.distributed.bench`), which both build their steps from these pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from losia_cl.errors import ConfigError
from losia_cl.fields import documented


@dataclass(frozen=True)
class BenchConfig:
    """Model and batch of the benchmark (defaults: a mid-sized random Llama that 2 CPU cores time in minutes).

    ``rank_factor`` is given to every method that has a ``rank_factor`` option (LoSiA's p; the
    adapter methods match their rank to LoSiA's trainable-parameter count at that p), ``period``
    to every method that has a ``period`` option (LoSiA's slot length T).
    """

    model: str = documented("Model to train: empty for the random Llama of the sizes below, else any model "
                            "`losia-cl run` accepts (smollm2-135m, tiny-llama, a Hugging Face id or a path).", "")
    hidden_size: int = documented("Hidden size of the random Llama (without --model).", 768)
    intermediate_size: int = documented("Intermediate (MLP) size of the random Llama.", 2048)
    num_layers: int = documented("Decoder layers of the random Llama.", 8)
    vocab_size: int = documented("Vocabulary size of the random Llama.", 8192)
    batch_size: int = documented("Sequences per training step.", 4)
    seq_len: int = documented("Tokens per sequence.", 256)
    rank_factor: float = documented("LoSiA's rank factor p; LoRA's rank is matched to LoSiA's trainable "
                                    "parameters at this p.", 1 / 8)
    period: int = documented("LoSiA's slot length T; every timed sample is T consecutive steps, so it holds one "
                             "re-localization and T steps of importance recording.", 4)
    dtype: str = documented("Weight dtype: float32 or bfloat16.", "float32")
    rounds: int = documented("Timed rounds; each times one sample of every method, the order rotated.", 5)
    warmup: int = documented("Untimed samples of every method before the rounds.", 1)
    device: str = documented("Torch device (cpu, cuda, cuda:N).", "cpu")
    seed: int = documented("Seed of the weights and of the random batch.", 0)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "intermediate_size", "num_layers", "vocab_size", "batch_size", "seq_len",
                     "period", "rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"bench: {name} = {value!r} is invalid: it must be an integer >= 1")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"bench: warmup = {self.warmup!r} is invalid: it must be an integer >= 0")
        if not 0 < self.rank_factor <= 1:
            raise ConfigError(f"bench: rank_factor = {self.rank_factor!r} is invalid: it must be in (0, 1]")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"bench: dtype = {self.dtype!r} is invalid: it must be float32 or bfloat16")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


def build_model(cfg: BenchConfig) -> torch.nn.Module:
    """``cfg.model`` loaded as ``losia-cl run`` loads it, or the random Llama of ``cfg``'s sizes."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.model:
        from losia_cl.models import load_model

        torch.manual_seed(cfg.seed)
        return load_model(cfg.model, dtype=dtype, device=cfg.device, seed=cfg.seed)[0]
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=max(1, cfg.hidden_size // 64),
        num_key_value_heads=max(1, cfg.hidden_size // 64), max_position_embeddings=max(cfg.seq_len, 64),
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config).to(device=cfg.device, dtype=dtype)


def lm_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """The language-model loss over every token of ``batch["input_ids"]``."""
    return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss


def create_bench_method(name: str, cfg: BenchConfig) -> Any:
    """The method registered as ``name`` with lr 1e-5 and, where it has them, ``rank_factor`` and ``period``.

    The LoSiA family starts from random subnets, so that the timed steps are steady-state ones (one
    layer records importance) rather than the first slot's scoring, in which every layer records.
    GaLore's ``update_proj_gap`` is ``period``: every timed sample holds one projector update (an SVD
    of every target matrix's gradient), the most its default gap of 200 steps ever pays in one sample.
    """
    from losia_cl.methods import METHODS, create_method

    options: dict[str, Any] = {"lr": 1e-5}
    names = {f.name for f in fields(METHODS.get(name))}
    if "rank_factor" in names:
        options["rank_factor"] = cfg.rank_factor
    if "period" in names:
        options["period"] = cfg.period
    if "update_proj_gap" in names:
        options["update_proj_gap"] = cfg.period
    if "losia_options" in names:
        options["losia_options"] = {"init": "random"}
        if name == "losia":  # LoSiA-Pro is the default (losia-pro an alias): the row "losia" times the plain path
            options["losia_options"]["pro"] = False
    return create_method(name, **options)


def sync_device(device: str) -> None:
    """Wait for the device's queued work (CUDA), so that a clock read after it times the work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
