"""Learning rates chosen by protocol: a grid per method, scored on eval splits, one stated rule.

* :mod:`.grid` — the default grid around each method's documented centre, ``--grid`` parsing;
* :mod:`.select` — the selection rule and the ``tune.json`` file (torch-free);
* :mod:`losia_cl.learning_rates` (below the trainer, which reads it) — which learning rate a run uses for
  each method and where it came from, and the reader of ``tune.json``;
* :mod:`.runner` — :func:`run_tune`, the grid search itself (``losia-cl tune``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

_LAZY = {
    "check_grid": ".grid",
    "default_grid": ".grid",
    "extend": ".grid",
    "parse_grid": ".grid",
    "Choice": ".select",
    "GridPoint": ".select",
    "SeedRun": ".select",
    "choose": ".select",
    "read_tune_file": ".select",
    "LearningRate": "losia_cl.learning_rates",
    "resolve_learning_rates": "losia_cl.learning_rates",
    "TuneOutcome": ".runner",
    "run_tune": ".runner",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from losia_cl.learning_rates import LearningRate, resolve_learning_rates

    from .grid import check_grid, default_grid, extend, parse_grid
    from .runner import TuneOutcome, run_tune
    from .select import Choice, GridPoint, SeedRun, choose, read_tune_file

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
