"""The selection rule and the ``tune.json`` file (torch-free).

Rule: for each method, the learning rate with the highest final average performance (AP after the last
tuning task) on the eval splits; ties (within 1e-9) go to the lower learning rate.  ``tune.json`` keeps
every grid point's score matrix and AP, the chosen rate per method, and the notes the rule raised (a best
rate on the grid's edge, or a grid whose points all scored the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError
from losia_cl.results import read_json

TUNE_FORMAT = "losia_cl.tune/1"
RULE = "highest final AP on the eval split; ties (within 1e-9) go to the lower learning rate"
TIE = 1e-9


@dataclass(frozen=True)
class GridPoint:
    """One method trained at one learning rate through the tuning tasks, scored on eval."""

    lr: float
    ap: float
    scores: list[list[float]]
    loglik_ap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(points: Sequence[GridPoint]) -> tuple[float, list[str]]:
    """The chosen learning rate by :data:`RULE`, and notes on the choice (edge of grid, all tied)."""
    if not points:
        raise ConfigError("tune: a method has an empty learning-rate grid")
    ordered = sorted(points, key=lambda p: p.lr)
    best = max(p.ap for p in ordered)
    chosen = next(p for p in ordered if p.ap >= best - TIE)
    notes = []
    if all(abs(p.ap - best) <= TIE for p in ordered):
        notes.append(f"every learning rate scored AP {best:.3f}: the rule falls back to the lowest one")
    elif len(ordered) > 1 and chosen.lr in (ordered[0].lr, ordered[-1].lr):
        side = "lowest" if chosen.lr == ordered[0].lr else "highest"
        notes.append(f"the best learning rate {chosen.lr:g} is the grid's {side}; a wider grid may find a better one")
    return chosen.lr, notes


def write_tune_file(path: Path, info: dict[str, Any]) -> None:
    """Write ``tune.json`` atomically."""
    from losia_cl.trainer.files import atomic_write_json

    atomic_write_json(path, {"format": TUNE_FORMAT, "rule": RULE, **info})


def read_tune_file(path: str | Path) -> dict[str, Any]:
    """A ``tune.json``, checked: :class:`DataError` names the file and the missing or bad key."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: tune file not found (write one with losia-cl tune)")
    info = read_json(path)  # one-line DataError for a damaged file, a FIFO or a folder
    if info.get("format") != TUNE_FORMAT:
        raise DataError(f"{path}: key format: expected {TUNE_FORMAT!r} (a file written by losia-cl tune)")
    chosen = info.get("chosen")
    if not isinstance(chosen, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in chosen.values()
    ):
        raise DataError(f"{path}: key chosen: expected {{method: learning rate > 0}}, got {chosen!r:.80}")
    for key in ("stream", "model"):
        if not isinstance(info.get(key), str):
            raise DataError(f"{path}: key {key}: missing")
    return info
