"""Weights & Biases runs of a run (``losia-cl run --wandb``): one W&B run per method.

Each method's W&B run receives the scalars of :mod:`losia_cl.trainer.metrics_log` (``train/loss``,
``train/lr``, ``score/<task>``, ``subnet/...``) with its step axis as W&B's step.  Unless ``WANDB_MODE`` is
set, the run is offline, its files under ``<out>/wandb/offline-run-*`` (``wandb sync`` uploads them later);
``WANDB_PROJECT`` (default ``losia-cl``), ``WANDB_ENTITY`` and ``WANDB_DIR`` (instead of ``<out>``) are
respected.  The run is named ``<out folder name>/<method>``, grouped by the out folder name (see
:func:`run_name`), and records the run's configuration with the method and its options.  It neither
captures the console nor samples system metrics; under ``-q`` W&B prints nothing.  A method that stops (an
error, an interrupt) finishes its run as failed; resumed, it starts a new W&B run of the same name from its
checkpoint's step.  The module imports ``wandb`` only when a run is opened.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from losia_cl.multiseed import SEEDS_FILE

logger = logging.getLogger(__name__)

#: The W&B project unless ``WANDB_PROJECT`` names one.
DEFAULT_PROJECT = "losia-cl"
#: The folder W&B writes into inside the run folder (unless ``WANDB_DIR`` is set).
WANDB_DIR = "wandb"


def wandb_problem() -> str | None:
    """Why ``--wandb`` cannot work here (one line), or None when the ``wandb`` package is installed."""
    if importlib.util.find_spec("wandb") is None:
        return "needs the wandb package: pip install wandb"
    return None


def run_name(out_dir: Path, method: str) -> tuple[str, str]:
    """The W&B run name and group of ``method`` in the run folder ``out_dir``: ``<folder>/<method>`` in group
    ``<folder>``; a ``--seeds`` run's folder ``ROOT/seed<N>`` gives ``ROOT/seed<N>/<method>`` in group ``ROOT``."""
    folder = Path(out_dir).resolve()
    if (folder.parent / SEEDS_FILE).is_file():
        return f"{folder.parent.name}/{folder.name}/{method}", folder.parent.name
    return f"{folder.name}/{method}", folder.name


class WandbWriter:
    """A :class:`~losia_cl.trainer.metrics_log.ScalarWriter` on one W&B run: the scalars of one step go
    into one history row (``run.log(..., step=step)``); steps only grow within a run."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self._step: int | None = None
        self._row: dict[str, float] = {}

    @classmethod
    def open(cls, out_dir: Path, method: str, config: dict[str, Any]) -> WandbWriter:
        """A new W&B run for ``method`` of the run folder ``out_dir``, recording ``config``."""
        import wandb

        folder = Path(out_dir).resolve()
        settings: dict[str, Any] = {"console": "off", "x_disable_stats": True, "symlink": False}
        if not logging.getLogger("losia_cl").isEnabledFor(logging.INFO):
            settings["silent"] = True
        # read here, not left to W&B, which keeps the environment it saw at its first run in the process
        options: dict[str, Any] = {"mode": os.environ.get("WANDB_MODE") or "offline",
                                   "project": os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
                                   "entity": os.environ.get("WANDB_ENTITY") or None,
                                   "dir": os.environ.get("WANDB_DIR") or None}
        if options["dir"] is None:  # W&B makes its folder WANDB_DIR there
            options["dir"] = str(folder)
        name, group = run_name(folder, method)
        run = wandb.init(name=name, group=group, config=config, reinit="create_new",
                         settings=wandb.Settings(**settings), **options)
        logger.info("W&B run %s (%s mode) in %s", run.name, options["mode"], options["dir"])
        return cls(run)

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None:
        if self._step is not None and global_step != self._step:
            self._commit()
        self._step = global_step
        self._row[tag] = float(scalar_value)

    def _commit(self) -> None:
        if self._row:
            self.run.log(self._row, step=self._step)
        self._row = {}

    def flush(self) -> None:
        self._commit()

    def close(self) -> None:
        """Finish the run: failed when closed while an exception propagates (the method stopped)."""
        self._commit()
        self.run.finish(exit_code=1 if sys.exc_info()[0] is not None else 0)
