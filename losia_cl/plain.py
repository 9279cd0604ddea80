"""Plain data (what JSON or ``torch.load(weights_only=True)`` gives back) checked against a dataclass's fields.

:func:`from_plain` builds a dataclass from a dict only when every key is one of its fields, every field
without a default is given and every value has the type the field's annotation names (``int``, ``float``
(a finite number), ``str``, ``bool``, ``None``, ``Any``, unions, ``list[X]`` and ``dict[K, V]`` to any
depth); otherwise it raises :class:`~losia_cl.errors.DataError` naming the field and the place in it.
Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from losia_cl.errors import DataError, brief

__all__ = ["from_plain", "plain_problem"]

T = TypeVar("T")


def _said(hint: Any) -> str:
    names = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false",
             type(None): "null", list: "a list", dict: "an object"}
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_said(arg) for arg in typing.get_args(hint))
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer beyond the floats
        return False


def plain_problem(value: Any, hint: Any, where: str) -> str | None:
    """Why ``value`` is not of the annotated type ``hint`` (``where``: its place), or ``None`` when it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        if any(plain_problem(value, arg, where) is None for arg in args):
            return None
        return f"{where}: expected {_said(hint)}, got {brief(value)}"
    if origin is list:
        if not isinstance(value, list):
            return f"{where}: expected a list, got {brief(value)}"
        for index, item in enumerate(value):
            problem = plain_problem(item, args[0] if args else Any, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where}: expected an object, got {brief(value)}"
        key_hint, value_hint = args if args else (Any, Any)
        for key, item in value.items():
            problem = plain_problem(key, key_hint, f"{where} key") or plain_problem(item, value_hint, f"{where}.{key}")
            if problem:
                return problem
        return None
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is type(None):
        ok = value is None
    else:
        ok = isinstance(value, hint)
    return None if ok else f"{where}: expected {_said(hint)}, got {brief(value)}"


def from_plain(cls: type[T], data: Any, where: str) -> T:
    """``cls(**data)`` once ``data`` fits ``cls``'s fields (see the module docstring); ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected an object with the fields of {cls.__name__}, got {brief(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(map(repr, unknown[:5]))}; "
                        f"expected the fields {', '.join(fields)}")
    missing = [name for name, f in fields.items() if name not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise DataError(f"{where}: required key(s) {', '.join(map(repr, missing))} missing")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        problem = plain_problem(value, hints[key], f"{where}.{key}")
        if problem:
            raise DataError(problem)
    return cls(**data)
