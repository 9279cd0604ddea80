"""The selection rule and the ``tune.json`` file it writes (torch-free; read by :mod:`losia_cl.learning_rates`).

Rule (:data:`RULE`): for each method, the learning rate with the highest **learning accuracy on the eval
splits** (LA: the mean over the tuning tasks of a task's eval score right after it was trained), averaged
over the tune seeds; every rate whose LA lies within :data:`TOLERANCE` of the best counts as tied, and a tie
goes to the lowest such rate.  Final AP is not the criterion because it partly measures retention, the very
outcome the methods are compared on (``docs/fair-comparison.md`` says why).  ``tune.json`` keeps every grid
point's per-seed score matrices, LA, AP and graded AP, the chosen rate per method, whether it lies at an edge
of the (extended) grid, and the notes the rule raised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError
from losia_cl.learning_rates import TUNE_FORMAT, read_tune_file  # noqa: F401  read_tune_file re-exported

#: LA differences up to this (one percentage point) count as ties, which go to the lower learning rate.
TOLERANCE = 0.01
CRITERION = "eval_learning_accuracy"
RULE = (f"highest learning accuracy (LA) on the eval splits, averaged over the tune seeds; rates within "
        f"{TOLERANCE:g} of the best LA are tied and the lowest of them is chosen")


@dataclass(frozen=True)
class SeedRun:
    """One grid point under one seed: its eval score matrix and the metrics computed from it."""

    seed: int
    la: float
    ap: float
    scores: list[list[float]]
    loglik_ap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "la": self.la, "ap": self.ap, "loglik_ap": self.loglik_ap, "scores": self.scores}


@dataclass(frozen=True)
class GridPoint:
    """One method trained at one learning rate through the tuning tasks under every tune seed, scored on eval.

    ``la``, ``ap`` and ``loglik_ap`` are the means over ``runs``; ``extended`` marks a rate added beyond
    an edge of the grid.
    """

    lr: float
    runs: tuple[SeedRun, ...]
    extended: bool = False

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError(f"tune: grid point lr={self.lr:g} has no run")

    @property
    def la(self) -> float:
        return math.fsum(r.la for r in self.runs) / len(self.runs)

    @property
    def ap(self) -> float:
        return math.fsum(r.ap for r in self.runs) / len(self.runs)

    @property
    def loglik_ap(self) -> float | None:
        values = [r.loglik_ap for r in self.runs]
        return None if any(v is None for v in values) else math.fsum(values) / len(values)

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "la": self.la, "ap": self.ap, "loglik_ap": self.loglik_ap,
                "extended": self.extended, "runs": [r.to_dict() for r in self.runs]}


@dataclass(frozen=True)
class Choice:
    """The chosen rate; ``edge`` ('lowest' / 'highest') when it is an end of a grid of several rates and
    something was learned; ``notes`` for the reader."""

    lr: float
    edge: str | None
    notes: tuple[str, ...]


def choose(points: Sequence[GridPoint]) -> Choice:
    """The chosen learning rate by :data:`RULE`, whether it lies at an edge, and notes on the choice."""
    if not points:
        raise ConfigError("tune: a method has an empty learning-rate grid")
    ordered = sorted(points, key=lambda p: p.lr)
    best = max(p.la for p in ordered)
    chosen = next(p for p in ordered if p.la >= best - TOLERANCE)
    notes, edge = [], None
    if best <= TOLERANCE:
        notes.append(f"no learning rate learned anything on eval (best LA {best:.3f}): the rule falls back to the "
                     "lowest one; check the budget or widen the grid")
    elif len(ordered) > 1 and chosen.lr in (ordered[0].lr, ordered[-1].lr):
        edge = "lowest" if chosen.lr == ordered[0].lr else "highest"
    return Choice(chosen.lr, edge, tuple(notes))


def write_tune_file(path: Path, info: dict[str, Any]) -> None:
    """Write ``tune.json`` atomically."""
    from losia_cl.trainer.files import atomic_write_json

    atomic_write_json(path, {"format": TUNE_FORMAT, "criterion": CRITERION, "rule": RULE, "tolerance": TOLERANCE,
                             **info})
