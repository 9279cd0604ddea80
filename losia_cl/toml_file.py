"""Reading a TOML file with one-line errors that name the file (stream manifests, ``--config`` run files)."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from losia_cl.errors import ConfigError, DataError


def _toml() -> ModuleType:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading a TOML file on Python < 3.11 needs the 'tomli' package") from None
    return tomllib


def read_toml(path: str | os.PathLike[str], *, what: str) -> dict[str, Any]:
    """The parsed TOML at ``path``; :class:`DataError` if missing, :class:`ConfigError` if not TOML.

    ``what`` names the file's role in the messages (``"stream manifest"``, ``"run configuration"``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found" if not path.exists() else f"{path}: not a file")
    tomllib = _toml()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
