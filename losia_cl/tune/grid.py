"""Learning-rate grids: five values half a decade apart around each method's default, or the user's own.

The default grid of a method is ``centre · 10^(k/2)`` for ``k = −2..2`` (centre/10, centre/√10, centre,
√10·centre, 10·centre, rounded to three significant digits), the centre being the method's built-in
default learning rate (see ``docs/fair-comparison.md`` for where those come from).  ``--grid losia=1e-4,3e-4,1e-3``
replaces one method's grid.  Every rate must lie in (0, 1] (:data:`MAX_RATE`); a grid is checked whole
before anything trains.  :func:`extend` gives the next rate beyond an edge (half a decade further), which
``tune`` adds while the chosen rate lies at an edge, at most :data:`MAX_EXTENSIONS` times per side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from losia_cl.errors import ConfigError
from losia_cl.learning_rates import default_lr

#: exponents (in half decades) of the default grid around the centre.
HALF_DECADES = (-2, -1, 0, 1, 2)
#: the largest learning rate a grid may hold (the rates of ``--lr`` obey the same bound).
MAX_RATE = 1.0
#: rates ``tune`` may add beyond each edge of a grid while the chosen rate lies on that edge.
MAX_EXTENSIONS = 2
#: the step of the default grid and of an extension: half a decade.
STEP = 10 ** 0.5


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def default_grid(method: str) -> list[float]:
    """Five learning rates half a decade apart, centred on ``method``'s default."""
    centre = default_lr(method)
    return [_round(centre * 10 ** (k / 2)) for k in HALF_DECADES]


def check_rate(rate: object, where: str) -> float:
    """``rate`` as a float if it is a number in (0, :data:`MAX_RATE`], else :class:`ConfigError` naming ``where``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_RATE:
        raise ConfigError(f"{where}: learning rate {rate!r} must be a number > 0 and <= {MAX_RATE:g}")
    return float(rate)


def check_grid(grid: dict[str, Sequence[float]], methods: Sequence[str]) -> dict[str, list[float]]:
    """Every method's grid, checked whole before anything trains: present, non-empty, rates in (0, 1]."""
    missing = [m for m in methods if m not in grid]
    if missing:
        raise ConfigError(f"tune: no learning-rate grid for {', '.join(missing)}")
    checked = {}
    for method in methods:
        rates = [check_rate(rate, f"grid of {method}") for rate in grid[method]]
        if not rates:
            raise ConfigError(f"tune: the learning-rate grid of {method} is empty")
        checked[method] = sorted(set(rates))
    return checked


def extend(rate: float, side: str) -> float | None:
    """The rate half a decade beyond ``rate`` (``side`` 'lowest': below it, 'highest': above it), rounded
    to three significant digits (a rate of the ladder ``10^(k/2)`` goes to the next rung, so rounding does not
    drift: 0.316 → 1); ``None`` above :data:`MAX_RATE`."""
    step = -1 if side == "lowest" else 1
    half_decades = 2 * math.log10(rate)
    if abs(half_decades - round(half_decades)) < 0.01:  # a rounded rate of the half-decade ladder: stay on it
        new = _round(10 ** ((round(half_decades) + step) / 2))
    else:
        new = _round(rate * STEP ** step)
    return new if 0 < new <= MAX_RATE else None


def parse_grid(entries: Iterable[str], methods: Sequence[str]) -> dict[str, list[float]]:
    """The grid of every method in ``methods``: ``METHOD=a,b,c`` entries override the defaults.

    Values are sorted and deduplicated; a method not in ``methods``, a value that is not a number in (0, 1],
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
            if not 0 < rate <= MAX_RATE:
                raise ConfigError(f"--grid {entry!r}: learning rate {text} must be > 0 and <= {MAX_RATE:g}")
            rates.append(rate)
        if not rates:
            raise ConfigError(f"--grid {entry!r}: no learning rate given")
        grid[name] = sorted(set(rates))
    return grid
