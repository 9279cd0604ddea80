"""Dataclass fields documented in one place: ``metadata["help"]`` (the CLI help is generated from it)."""

from __future__ import annotations

from dataclasses import MISSING, field
from typing import Any


def documented(text: str, default: Any = MISSING, **kwargs: Any) -> Any:
    """A dataclass field carrying its documentation in ``metadata["help"]``."""
    if default is MISSING:
        return field(metadata={"help": text}, **kwargs)
    return field(default=default, metadata={"help": text}, **kwargs)
