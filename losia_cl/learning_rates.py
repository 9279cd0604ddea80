"""Which learning rate each method of a run uses, and where it came from; the reader of ``tune.json``.

Precedence: ``--lr`` (or ``RunConfig.lr``) first, then ``--lr-from tune.json``, then the method's
built-in default (a method run with replay, ``X+replay``, takes X's tuned rate when tune.json has none of
its own, and X's default).  The source is recorded in ``run.json`` (``learning_rates``) and shown in the report.
``tune.json`` is written by ``losia-cl tune`` (:mod:`losia_cl.tune.select`); the trainer reads it here,
below the tuner that runs the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError
from losia_cl.results import read_json

TUNE_FORMAT = "losia_cl.tune/2"
#: formats ``--lr-from`` reads (the first kept only ``chosen``-compatible keys that are still read).
READABLE_FORMATS = ("losia_cl.tune/1", TUNE_FORMAT)

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


def default_lr(method: str) -> float:
    """The built-in default learning rate of ``method`` (its class's ``lr`` field; ``X+replay``: X's)."""
    from losia_cl.methods import METHODS
    from losia_cl.methods.spec import parse_method_spec

    cls = METHODS.get(parse_method_spec(method).method)
    for f in fields(cls):
        if f.name == "lr":
            return float(f.default)
    raise ConfigError(f"method {method!r} has no learning-rate option")


def read_tune_file(path: str | Path) -> dict[str, Any]:
    """A finished ``tune.json``, checked: :class:`DataError` names the file and the missing or bad key."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: tune file not found (write one with losia-cl tune)")
    info = read_json(path)  # one-line DataError for a damaged file, a FIFO or a folder
    if info.get("format") not in READABLE_FORMATS:
        raise DataError(f"{path}: key format: expected {TUNE_FORMAT!r} (a file written by losia-cl tune)")
    if "chosen" not in info and info.get("finished_at") is None:
        raise DataError(f"{path}: the tune did not finish (no chosen rates); continue it with losia-cl tune --resume")
    chosen = info.get("chosen")
    if not isinstance(chosen, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in chosen.values()
    ):
        raise DataError(f"{path}: key chosen: expected {{method: learning rate > 0}}, got {chosen!r:.80}")
    for key in ("stream", "model"):
        if not isinstance(info.get(key), str):
            raise DataError(f"{path}: key {key}: missing")
    return info
