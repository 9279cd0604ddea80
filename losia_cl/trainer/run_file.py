"""``losia-cl run --config run.toml``: the run options of a TOML file, checked against :class:`RunConfig`.

The file holds :class:`RunConfig` fields at its top level, spelled as fields (``max_steps``) or as
options (``max-steps``)::

    model = "tiny-llama"
    methods = ["losia", "full"]        # or "losia,full"
    tasks = ["category", "position"]
    max_steps = 20
    lr = { losia = 1e-2, full = 1e-3 } # or one number for every method
    shuffle = false

Options given on the command line replace the file's values.  Paths are read as on the command
line (relative to the current directory), since the file stands for a command line.  An unknown
key or a value of the wrong kind raises :class:`ConfigError` naming the file and the key.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError
from losia_cl.toml_file import read_toml

from .config import RunConfig

#: What a TOML value of a field may be, by the field's annotation: (accepted types, how to say it).
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "tuple[str, ...]": ((list, str), "a list of strings or one comma-separated string"),
    "dict[str, float]": ((dict, int, float), "a table of METHOD = NUMBER, or one number"),
    "dict[str, dict[str, Any]]": ((dict,), "a table of tables (METHOD = { option = value })"),
}


def _kind(annotation: object) -> tuple[tuple[type, ...], str] | None:
    text = str(annotation).replace(" | None", "").replace("Optional[", "").strip()
    return _KINDS.get(text)


def read_run_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The :class:`RunConfig` fields a TOML run file sets, as keyword arguments (``lr`` numbers as ``{"*": x}``)."""
    path = Path(path)
    doc = read_toml(path, what="run configuration")
    known = {f.name: f for f in fields(RunConfig)}
    values: dict[str, Any] = {}
    for key, value in doc.items():
        name = key.replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown key {key!r}{hint}; run options: {', '.join(known)}")
        if name in values:
            raise ConfigError(f"{path}: key {key!r} is given twice (as {name!r} and {name.replace('_', '-')!r})")
        kind = _kind(known[name].type)
        if kind is not None:
            types, said = kind
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                raise ConfigError(f"{path}: key {key!r}: expected {said}, got {value!r:.60}")
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise ConfigError(f"{path}: key {key!r}: expected a list of strings, got {value!r:.60}")
            value = tuple(value)
        if name == "lr" and isinstance(value, dict):
            for method, rate in value.items():
                if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                    raise ConfigError(f"{path}: key 'lr.{method}': expected a number, got {rate!r:.60}")
        elif name == "lr":
            value = {"*": float(value)}
        values[name] = value
    return values
