"""Avalanche's own strategies and a LoSiA optimizer, and the Avalanche warnings a losia-cl user cannot act on.

**Stock strategies.** ``avalanche.training.Naive(model, LoSiA-optimizer, ...)`` (and every strategy built on
Avalanche's ``BatchObservation``) cannot drive a LoSiA optimizer: before the first experience Avalanche's
``update_optimizer`` puts every model parameter into the optimizer's groups and resets its state, while
LoSiA holds only the target matrices, with per-group subnets and schedules.  It fails deep inside Avalanche
("No unique group found for this node model.embed_tokens.weight").  :func:`guard_stock_strategies`
(called when ``losia_cl.avalanche`` is imported) makes ``update_optimizer`` refuse a LoSiA optimizer with
one line pointing to :class:`~losia_cl.avalanche.CausalLMStrategy`; every other optimizer goes through
unchanged.

**Warnings.** Importing Avalanche warns that ``qpsolvers`` has no QP solver (used only by the GEM plugin,
which text tasks cannot use); ``ReplayPlugin`` calls a storage-policy method that Avalanche itself marks
deprecated.  :func:`quiet_import` and :func:`quiet_known_warnings` hold back exactly those two messages
(logged at DEBUG instead); any other warning is shown as usual.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from losia_cl.errors import ConfigError

logger = logging.getLogger(__name__)

#: (category, message pattern) of the Avalanche warnings losia-cl holds back.
KNOWN_WARNINGS: tuple[tuple[type[Warning], re.Pattern[str]], ...] = (
    (UserWarning, re.compile(r"no QP solver found on your system")),
    (DeprecationWarning, re.compile(r"Call to deprecated function update \(removal in version 0\.7: switch to "
                                    r"pre_adapt and post_adapt\)")),
)

NAIVE_MESSAGE = (
    "Avalanche's stock strategies (Naive, ...) cannot train with a LoSiA optimizer: they put every model "
    "parameter into it and reset its state, and read (x, y, task) class batches; use "
    "losia_cl.avalanche.CausalLMStrategy(model=..., tokenizer=..., method='losia', plugins=[...]), which builds "
    "LoSiA per experience (docs/avalanche.md)"
)


def _known(message: Warning | str, category: type[Warning]) -> bool:
    text = str(message)
    return any(issubclass(category, kind) and pattern.search(text) for kind, pattern in KNOWN_WARNINGS)


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Import Avalanche without the ``qpsolvers`` warning (a plain filter: it is emitted once, at import)."""
    with warnings.catch_warnings():
        kind, pattern = KNOWN_WARNINGS[0]
        warnings.filterwarnings("ignore", message=pattern.pattern, category=kind)
        yield


@contextlib.contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Hold back :data:`KNOWN_WARNINGS` raised inside the block; re-issue every other warning as it came.

    Avalanche's deprecation decorator installs its own ``"once"`` filter in front of all others before it
    warns, so a filter cannot silence it: the block records its warnings instead.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for record in caught:
        if _known(record.message, record.category):
            logger.debug("held back an Avalanche warning: %s", record.message)
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno,
                                   source=record.source)


def _is_losia(optimizer: Any) -> bool:
    from losia_cl.optim import LoSiA

    return isinstance(optimizer, LoSiA) or isinstance(getattr(optimizer, "optim", None), LoSiA)


def _guarded(update_optimizer: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(update_optimizer, "_losia_cl_guard", False):
        return update_optimizer

    @functools.wraps(update_optimizer)
    def guarded(optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_losia(optimizer):
            raise ConfigError(NAIVE_MESSAGE)
        return update_optimizer(optimizer, *args, **kwargs)

    guarded._losia_cl_guard = True  # type: ignore[attr-defined]
    return guarded


def guard_stock_strategies() -> None:
    """Make Avalanche's ``update_optimizer`` refuse a LoSiA optimizer with one line (see the module docstring)."""
    from avalanche.models import dynamic_optimizers
    from avalanche.training.templates.observation_type import batch_observation

    for module in (dynamic_optimizers, batch_observation):
        if hasattr(module, "update_optimizer"):
            module.update_optimizer = _guarded(module.update_optimizer)
