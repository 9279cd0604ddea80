"""A small typed name registry: duplicate names raise, failed lookups list the known names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from losia_cl.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lowercase names to objects of one kind.

    >>> colours = Registry[int]("colour")
    >>> colours.register("red", 1)
    1
    >>> colours.get("red")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    @overload
    def register(self, name: str, obj: T) -> T: ...

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    def register(self, name: str, obj: T | None = None):  # type: ignore[no-untyped-def]
        """Register ``obj`` under ``name``; without ``obj`` returns a decorator."""

        def add(item: T) -> T:
            key = name.lower()
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The object registered as ``name`` (case-insensitive)."""
        try:
            return self._items[name.lower()]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
