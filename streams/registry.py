"""The stream registry: :func:`load_stream`, :func:`describe_streams`, :func:`register_stream`.

A registered stream is a loader function taking keyword-only options and
returning a :class:`~losia_cl.streams.types.Stream`.  :func:`load_stream`
also accepts the path of a TOML manifest describing a custom stream (see
:mod:`losia_cl.streams.manifest`) and the path of one data file, a one-task
stream (see :mod:`losia_cl.streams.own_data`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, UnknownNameError
from losia_cl.registry import Registry

from .types import Stream

StreamLoader = Callable[..., Stream]


@dataclass(frozen=True)
class StreamEntry:
    """A registered stream.

    Attributes:
        name: the name :func:`load_stream` knows it by.
        description: one line for ``losia-cl streams``.
        loader: builds the stream from keyword-only options.
    """

    name: str
    description: str
    loader: StreamLoader


_STREAMS: Registry[StreamEntry] = Registry("stream")


def register_stream(name: str, description: str) -> Callable[[StreamLoader], StreamLoader]:
    """Decorator registering a loader as stream ``name`` with a one-line ``description``."""

    def add(loader: StreamLoader) -> StreamLoader:
        _STREAMS.register(name, StreamEntry(name=name.lower(), description=description, loader=loader))
        return loader

    return add


def stream_names() -> list[str]:
    """Names of the registered streams, sorted."""
    return _STREAMS.names()


def describe_streams() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered stream, sorted by name."""
    return [(name, _STREAMS.get(name).description) for name in _STREAMS.names()]


def stream_options(name_or_path: str | os.PathLike[str]) -> list[str]:
    """The option names :func:`load_stream` accepts for ``name_or_path`` (a stream name, manifest or data file)."""
    loader = _file_loader(name_or_path)
    return _option_names(loader if loader is not None else _STREAMS.get(name_or_path).loader)


def is_manifest_path(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether :func:`load_stream` reads ``name_or_path`` as a manifest (it ends with ``.toml``)."""
    return str(name_or_path).lower().endswith(".toml")


def _file_loader(name_or_path: str | os.PathLike[str]) -> StreamLoader | None:
    """The loader of a manifest (``.toml`` or any other ``PathLike``) or data-file path; None for stream names."""
    from .own_data import is_data_file_path

    if is_data_file_path(name_or_path):
        from .own_data import load_data_file

        return load_data_file
    if isinstance(name_or_path, os.PathLike) or is_manifest_path(name_or_path):
        from .manifest import load_manifest

        return load_manifest
    return None


def load_stream(name_or_path: str | os.PathLike[str], **options: Any) -> Stream:
    """Load a registered stream by name, a custom stream from a ``.toml`` manifest, or one data file.

    A path ending in ``.json``, ``.jsonl``, ``.csv``, ``.tsv`` or ``.parquet`` is a one-task
    stream (:func:`~losia_cl.streams.own_data.load_data_file`: options ``prompt``, ``answer``,
    ``labels``, ``metric``, ``max_new_tokens``, ``test_fraction``, ...).  ``options`` are passed
    to the stream's loader as keywords; an option the stream does not take raises
    :class:`ConfigError` listing the ones it does.  An unknown name raises
    :class:`UnknownNameError` listing the known streams.

    >>> stream = load_stream("demo", num_train=8, num_test=4)
    >>> stream.task_names
    ['category', 'position', 'successor', 'predecessor']
    """
    loader = _file_loader(name_or_path)
    if loader is not None:
        kind = "manifest" if loader.__name__ == "load_manifest" else "data file"
        return _call(loader, f"{kind} {name_or_path}", options, Path(name_or_path))
    if name_or_path not in _STREAMS:
        err = UnknownNameError("stream", str(name_or_path), _STREAMS.names())
        err.args = (f"{err}; or give the path of a .toml stream manifest or of a "
                    f"{'/'.join(_data_suffixes())} data file",)
        raise err
    entry = _STREAMS.get(name_or_path)
    return _call(entry.loader, f"stream {entry.name!r}", options)


def _data_suffixes() -> tuple[str, ...]:
    from .records import DATA_SUFFIXES

    return DATA_SUFFIXES


def _option_names(loader: StreamLoader) -> list[str]:
    return [
        p.name for p in inspect.signature(loader).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def _call(loader: StreamLoader, what: str, options: dict[str, Any], *args: Any) -> Stream:
    accepted = _option_names(loader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{what} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(accepted) or '(none)'}"
        )
    return loader(*args, **options)
