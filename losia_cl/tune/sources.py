"""Which learning rate each method of a run uses, and where it came from.

Precedence: ``--lr`` (or ``RunConfig.lr``) first, then ``--lr-from tune.json``, then the method's
built-in default (a method run with replay, ``X+replay``, takes X's tuned rate when tune.json has none of
its own, and X's default).  The source is recorded in ``run.json`` (``learning_rates``) and shown in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from losia_cl.errors import ConfigError

SOURCE_DEFAULT = "default"
SOURCE_FLAG = "--lr"
SOURCE_TUNE = "tune.json"


@dataclass(frozen=True)
class LearningRate:
    """A method's learning rate and its source (``default``, ``--lr`` or ``tune.json``; ``file`` for the last)."""

    lr: float
    source: str
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_tune_matches(info: Mapping[str, Any], path: str, *, stream: str, model: str) -> None:
    """A tune file must come from the same stream and model as the run that uses it."""
    for key, value in (("stream", stream), ("model", model)):
        if info.get(key) != value:
            raise ConfigError(
                f"--lr-from {path}: tuned on {key} {info.get(key)!r}, but this run uses {key} {value!r}"
            )


def resolve_learning_rates(
    methods: Sequence[str], explicit: Mapping[str, float], tune_file: str | None = None
) -> dict[str, LearningRate]:
    """The learning rate and its source for every method (see the module docstring)."""
    from losia_cl.methods.spec import parse_method_spec
    from losia_cl.tune.grid import default_lr
    from losia_cl.tune.select import read_tune_file

    chosen: Mapping[str, float] = read_tune_file(tune_file)["chosen"] if tune_file else {}
    out = {}
    for method in methods:
        if method in explicit:
            out[method] = LearningRate(float(explicit[method]), SOURCE_FLAG)
        elif method in chosen:
            out[method] = LearningRate(float(chosen[method]), SOURCE_TUNE, tune_file)
        elif parse_method_spec(method).method in chosen:  # X+replay without its own: X's tuned rate
            out[method] = LearningRate(float(chosen[parse_method_spec(method).method]), SOURCE_TUNE, tune_file)
        else:
            out[method] = LearningRate(default_lr(method), SOURCE_DEFAULT)
    return out
