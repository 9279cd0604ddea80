"""Learning-rate grids: five values half a decade apart around each method's default, or the user's own.

The default grid of a method is ``centre · 10^(k/2)`` for ``k = −2..2`` (centre/10, centre/√10, centre,
√10·centre, 10·centre, rounded to three significant digits), the centre being the method's built-in
default learning rate (see ``docs/fair-comparison.md`` for where those come from).  ``--grid losia=1e-4,3e-4,1e-3``
replaces one method's grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields

from losia_cl.errors import ConfigError

#: exponents (in half decades) of the default grid around the centre.
HALF_DECADES = (-2, -1, 0, 1, 2)


def default_lr(method: str) -> float:
    """The built-in default learning rate of ``method`` (its class's ``lr`` field)."""
    from losia_cl.methods import METHODS

    cls = METHODS.get(method)
    for f in fields(cls):
        if f.name == "lr":
            return float(f.default)
    raise ConfigError(f"method {method!r} has no learning-rate option")


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def default_grid(method: str) -> list[float]:
    """Five learning rates half a decade apart, centred on ``method``'s default."""
    centre = default_lr(method)
    return [_round(centre * 10 ** (k / 2)) for k in HALF_DECADES]


def parse_grid(entries: Iterable[str], methods: Sequence[str]) -> dict[str, list[float]]:
    """The grid of every method in ``methods``: ``METHOD=a,b,c`` entries override the defaults.

    Values are sorted and deduplicated; a method not in ``methods``, a non-positive or non-numeric value,
    or a method given twice raises :class:`ConfigError` naming the entry.
    """
    grid = {m: default_grid(m) for m in methods}
    given: set[str] = set()
    for entry in entries:
        name, sep, values = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--grid {entry!r}: expected METHOD=LR,LR,... (e.g. losia=1e-4,3e-4,1e-3)")
        if name not in methods:
            raise ConfigError(f"--grid {entry!r}: {name!r} is not one of the methods tuned ({', '.join(methods)})")
        if name in given:
            raise ConfigError(f"--grid: method {name!r} is given twice")
        given.add(name)
        rates = []
        for text in filter(None, (v.strip() for v in values.split(","))):
            try:
                rate = float(text)
            except ValueError:
                raise ConfigError(f"--grid {entry!r}: {text!r} is not a number") from None
            if not rate > 0:
                raise ConfigError(f"--grid {entry!r}: learning rate {text} must be > 0")
            rates.append(rate)
        if not rates:
            raise ConfigError(f"--grid {entry!r}: no learning rate given")
        grid[name] = sorted(set(rates))
    return grid
