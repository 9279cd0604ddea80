"""``load_model``: resolve a model spec (built-in name, local path, hub id) to a model and tokenizer.

Resolution order, first match wins:

1. a built-in name (:func:`~losia_cl.models.specs.model_names`), case-insensitive;
2. a local path that exists: a checkpoint directory (``config.json``), a
   ``.gguf`` file, or a directory holding exactly one ``.gguf`` file;
3. a Hugging Face hub id: first from the local Hugging Face cache (no
   network), then, unless offline, from the hub.

If nothing works, :class:`ModelLoadError` lists every step tried and why it
failed, and the built-in names.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import ModelLoadError
from .gguf_convert import load_gguf
from .options import LoadOptions
from .pretrained import load_pretrained, summarize
from .specs import BUILTIN_MODELS, model_names

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# "name" or "namespace/name"; letters, digits, "-", "_", "."; no "--" or ".." (huggingface_hub's rule).
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.\-]{0,95}/)?[A-Za-z0-9][\w.\-]{0,95}$")


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` has the shape of a Hugging Face hub repository id."""
    return bool(_HUB_ID.match(spec)) and "--" not in spec and ".." not in spec and not spec.endswith((".", "-"))


def load_model(
    spec: str | os.PathLike[str],
    *,
    dtype: torch.dtype | str = "float32",
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal language model and its tokenizer.

    ``spec`` is a built-in name (``smollm2-135m``, ``tiny-llama``; see
    :func:`model_names`), a local checkpoint directory or ``.gguf`` file, or
    a Hugging Face hub id.  ``dtype`` is a floating torch dtype or its name
    (``"float32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``, ``"auto"`` =
    as stored); ``device`` any torch device.  ``cache_dir`` holds the
    embedded model (default ``$LOSIA_CL_CACHE``, ``$XDG_CACHE_HOME/losia-cl`` or ``~/.cache/losia-cl``).
    ``offline`` forbids network access (pip and the hub); by default it
    follows ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``.  ``seed``
    initialises randomly built models (``tiny-llama``); the global torch RNG
    is left untouched.

    The model comes back in eval mode; the tokenizer always has a pad token
    (its EOS if it had none) and ``model.generation_config.pad_token_id``
    is set.  Raises :class:`~losia_cl.errors.ConfigError` for bad options and
    :class:`ModelLoadError` (a ``ConfigError``) when the spec cannot be loaded.
    """
    options = LoadOptions.from_user(dtype=dtype, device=device, cache_dir=cache_dir, offline=offline, seed=seed)
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    if not isinstance(text, str) or not text.strip():
        raise ModelLoadError(f"model spec must be a non-empty string, got {spec!r}; {_builtin_listing()}")
    text = text.strip()
    start = time.perf_counter()
    if text in BUILTIN_MODELS:
        model, tokenizer = BUILTIN_MODELS.get(text).load(options)
        source = f"built-in {text.lower()}"
    else:
        model, tokenizer, source = _load_external(text, options)
    logger.info(
        "loaded %s (%s, %.1fM parameters, %s on %s) in %.1f s",
        text, source, sum(p.numel() for p in model.parameters()) / 1e6, model.dtype, model.device,
        time.perf_counter() - start,
    )  # fmt: skip
    return model, tokenizer


def _builtin_listing() -> str:
    return f"built-in models: {', '.join(model_names())} (losia-cl models describes them)"


def _load_external(spec: str, options: LoadOptions) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    names = BUILTIN_MODELS.names()
    tried = [f"built-in names: {spec!r} is not one of {', '.join(names)}"]
    close = difflib.get_close_matches(spec.lower(), names, n=1, cutoff=0.6)
    if close:
        tried[0] += f" (did you mean {close[0]!r}?)"

    path = Path(spec).expanduser()
    if path.exists():
        try:
            model, tokenizer = _load_local(path, options)
        except Exception as err:  # noqa: BLE001 - reported with everything else that was tried
            tried.append(f"local path {path.absolute()}: exists, but loading it failed: {summarize(err)}")
            tried.append("Hugging Face hub: not tried (the spec is an existing local path)")
            raise _failure(spec, tried) from err
        return model, tokenizer, f"local path {path.absolute()}"
    tried.append(f"local path: nothing at {path.absolute()}")

    if not is_hub_id(spec):
        tried.append(
            f"Hugging Face hub: not tried ({spec!r} is not a hub id; those look like 'name' or 'namespace/name')"
        )
        raise _failure(spec, tried)
    last: BaseException | None = None
    try:
        model, tokenizer = load_pretrained(spec, options, local_files_only=True)
        return model, tokenizer, "Hugging Face cache"
    except Exception as err:  # noqa: BLE001
        last = err
        tried.append(f"hub id {spec!r} from the local Hugging Face cache (offline): {summarize(err)}")
    if options.offline:
        tried.append(
            f"hub id {spec!r} online: not tried (offline mode: offline=True, HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)"
        )
    else:
        try:
            model, tokenizer = load_pretrained(spec, options, local_files_only=False)
            return model, tokenizer, "Hugging Face hub"
        except Exception as err:  # noqa: BLE001
            last = err
            tried.append(f"hub id {spec!r} online (huggingface.co): {summarize(err)}")
    raise _failure(spec, tried) from last


def _load_local(path: Path, options: LoadOptions) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(f"{path} is a file but not a .gguf file; give a checkpoint directory or a .gguf file")
        return load_gguf(path, options)
    if (path / "config.json").is_file():
        return load_pretrained(path, options, local_files_only=True)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return load_gguf(ggufs[0], options)
    found = f"{len(ggufs)} .gguf files ({', '.join(p.name for p in ggufs)})" if ggufs else "no .gguf file"
    raise ModelLoadError(f"directory {path} has no config.json and {found}")


def _failure(spec: str, tried: list[str]) -> ModelLoadError:
    """One line (the CLI's rule for errors): every step tried and why it failed, then the built-in names."""
    steps = " ".join(f"{i}. {' '.join(step.split()).rstrip(';.')};" for i, step in enumerate(tried, 1))
    return ModelLoadError(f"could not load model {spec!r}; tried, in order: {steps} {_builtin_listing()}")
