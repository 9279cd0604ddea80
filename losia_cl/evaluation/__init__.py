"""``losia-cl eval``: score any model on a stream's test splits, as ``losia-cl run`` scores its base model.

* :mod:`.config` — :class:`EvalConfig`, the command's documented, validated options;
* :mod:`.results` — :class:`EvalResults`, the typed ``eval.json`` (torch-free);
* :mod:`.model` — what to load: a model spec, or a PEFT adapter folder on its base;
* :mod:`.run` — :func:`run_eval`;
* :mod:`.cli` — the ``eval`` sub-command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

_LAZY = {
    "EvalConfig": "losia_cl.evaluation.config",
    "EvalResults": "losia_cl.evaluation.results",
    "read_eval_results": "losia_cl.evaluation.results",
    "EvalOutcome": "losia_cl.evaluation.run",
    "run_eval": "losia_cl.evaluation.run",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from losia_cl.evaluation.config import EvalConfig
    from losia_cl.evaluation.results import EvalResults, read_eval_results
    from losia_cl.evaluation.run import EvalOutcome, run_eval

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
