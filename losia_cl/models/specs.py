"""The built-in model names: what each is and how to build it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from losia_cl.registry import Registry

from . import embedded
from .options import LoadOptions
from .pretrained import finalize
from .tiny import tiny_llama

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Loader = Callable[[LoadOptions], "tuple[PreTrainedModel, PreTrainedTokenizerBase]"]


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: its name, a one-line description, and the function that loads it."""

    name: str
    description: str
    loader: Loader

    def load(self, options: LoadOptions) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Build/load the model and tokenizer as ``options`` ask."""
        return self.loader(options)


def _load_tiny(options: LoadOptions) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model, tokenizer = tiny_llama(seed=options.seed)
    return finalize(model, tokenizer, options)


class ModelRegistry(Registry[ModelSpec]):
    """The built-in models; also iterable as ``(name, spec)`` pairs like a dict."""

    def items(self) -> list[tuple[str, ModelSpec]]:
        """``(name, spec)`` pairs, sorted by name."""
        return [(name, self.get(name)) for name in self.names()]


#: Built-in models by name.
BUILTIN_MODELS = ModelRegistry("model")
BUILTIN_MODELS.register(embedded.NAME, ModelSpec(embedded.NAME, embedded.DESCRIPTION, embedded.load))
BUILTIN_MODELS.register(
    "tiny-llama",
    ModelSpec(
        "tiny-llama",
        "random LLaMA (2 layers, hidden 64, 4 heads / 2 kv, byte tokenizer, vocab 259) built in-process "
        "from load_model's seed; for tests and smoke runs",
        _load_tiny,
    ),
)


def model_names() -> dict[str, str]:
    """The built-in model names (sorted) with one-line descriptions."""
    return {name: BUILTIN_MODELS.get(name).description for name in BUILTIN_MODELS.names()}


def get_model_spec(name: str) -> ModelSpec:
    """The built-in :class:`ModelSpec` called ``name`` (case-insensitive); ``UnknownNameError`` otherwise."""
    return BUILTIN_MODELS.get(name)
