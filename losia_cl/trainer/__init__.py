"""The sequential trainer: streams -> methods -> score matrix, overlap, stability -> results on disk.

Importing the package is cheap (``RunConfig`` alone, e.g. for ``losia-cl --help``, needs no torch);
the trainer's modules load when their names are first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

_LAZY = {
    "RunConfig": "losia_cl.trainer.config",
    "RunOutcome": "losia_cl.trainer.experiment",
    "run_experiment": "losia_cl.trainer.experiment",
    "SequentialTrainer": "losia_cl.trainer.sequential",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from losia_cl.trainer.config import RunConfig
    from losia_cl.trainer.experiment import RunOutcome, run_experiment
    from losia_cl.trainer.sequential import SequentialTrainer

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
