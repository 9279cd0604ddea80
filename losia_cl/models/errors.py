"""The error raised when a model spec cannot be turned into a model."""

from __future__ import annotations

from losia_cl.errors import ConfigError


class ModelLoadError(ConfigError):
    """A model spec could not be loaded.

    A :class:`~losia_cl.errors.ConfigError` (hence a ``LosiaError`` and a
    ``ValueError``): the message says what was tried, in order, why each step
    failed, and lists the built-in model names.
    """
