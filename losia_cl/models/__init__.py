"""Model loading: built-in models (the embedded SmolLM2-135M-Instruct, a random tiny LLaMA), local paths, hub ids.

>>> from losia_cl.models import load_model, model_names
>>> model, tokenizer = load_model("tiny-llama")          # doctest: +SKIP
>>> model, tokenizer = load_model("smollm2-135m")        # doctest: +SKIP (first use fetches ~93 MB once)

Modules: :mod:`.loading` (``load_model`` and spec resolution), :mod:`.specs`
(built-in names), :mod:`.embedded` (fetching and converting SmolLM2),
:mod:`.tiny` (``tiny-llama``), :mod:`.gguf_convert` (GGUF -> plain model),
:mod:`.cache` (cache location, atomic publication), :mod:`.options`
(dtype/device/offline validation), :mod:`.pretrained` (transformers loading
and pad-token conventions).  See ``docs/models.md``.
"""

from __future__ import annotations

from .cache import CACHE_ENV, default_cache_dir, resolve_cache_dir
from .errors import ModelLoadError
from .loading import load_model
from .options import LoadOptions
from .specs import BUILTIN_MODELS, ModelSpec, get_model_spec, model_names
from .tiny import TinyLlamaConfig, byte_tokenizer, tiny_llama

__all__ = [
    "BUILTIN_MODELS",
    "CACHE_ENV",
    "LoadOptions",
    "ModelLoadError",
    "ModelSpec",
    "TinyLlamaConfig",
    "byte_tokenizer",
    "default_cache_dir",
    "get_model_spec",
    "load_model",
    "model_names",
    "resolve_cache_dir",
    "tiny_llama",
]
