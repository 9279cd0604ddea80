"""Options shared by the stream loaders: task subsets and deterministic subsampling."""

from __future__ import annotations

import random
from collections.abc import Sequence

from losia_cl.errors import ConfigError, DataError, UnknownNameError

from .types import Example


def select_tasks(available: Sequence[str], tasks: str | Sequence[str] | None, *, kind: str) -> list[str]:
    """The task names to load, in the order asked for.

    ``tasks`` is ``None`` (all of ``available`` in their default order), a
    sequence of names, or one comma-separated string (``"FOMC,C-STANCE"``, as a
    command line gives it).  Names match case-insensitively and come back
    spelled as in ``available``.  An unknown name raises
    :class:`UnknownNameError` (of kind ``kind``, listing ``available``); an
    empty selection or a repeated name raises :class:`ConfigError`.
    """
    if tasks is None:
        return list(available)
    if isinstance(tasks, str):
        names = [name.strip() for name in tasks.split(",") if name.strip()]
    else:
        names = list(tasks)
    if not names:
        raise ConfigError(f"tasks: the selection is empty; choose among {', '.join(available)}")
    by_key = {name.lower(): name for name in available}
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str) or name.lower() not in by_key:
            raise UnknownNameError(kind, str(name), available)
        canonical = by_key[name.lower()]
        if canonical in chosen:
            raise ConfigError(f"tasks: {canonical!r} is selected twice")
        chosen.append(canonical)
    return chosen


def check_limit(option: str, value: object) -> int | None:
    """``value`` if it is ``None`` or a positive integer, else :class:`ConfigError` naming ``option``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option} must be a positive integer or None, got {value!r}")
    return value


def check_seed(value: object) -> int:
    """``value`` if it is an integer, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"seed must be an integer, got {value!r}")
    return value


def subsample(examples: Sequence[Example], limit: int | None, *, seed: int, key: str) -> tuple[Example, ...]:
    """At most ``limit`` of ``examples``, drawn without replacement, kept in their original order.

    The draw depends only on ``seed``, ``key`` (e.g. ``"FOMC/train"``) and the
    number of examples, so it is the same in every run and does not change
    when other tasks are added to or removed from a selection.  ``limit=None``
    or a limit not below ``len(examples)`` returns every example.
    """
    if limit is None or limit >= len(examples):
        return tuple(examples)
    rng = random.Random(f"losia-cl:{seed}:{key}")
    keep = sorted(rng.sample(range(len(examples)), limit))
    return tuple(examples[i] for i in keep)


def hold_out(examples: Sequence[Example], fraction: float, *, where: str) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """``(train, test)``: a held-out test slice of ``round(fraction * n)`` examples (at least 1), both in file order.

    The draw uses a fixed seed and depends only on the number of examples, so every run, every
    ``--seed`` and every task name evaluates on the same examples of the same data.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"test_fraction must be a number in (0, 1), got {fraction!r}")
    if len(examples) < 2:
        raise DataError(f"{where}: {len(examples)} example(s) cannot be split into train and test; "
                        "give a test file")
    count = min(len(examples) - 1, max(1, round(fraction * len(examples))))
    rng = random.Random(f"losia-cl:held-out:{len(examples)}")
    test = set(rng.sample(range(len(examples)), count))
    return (tuple(e for i, e in enumerate(examples) if i not in test),
            tuple(e for i, e in enumerate(examples) if i in test))
