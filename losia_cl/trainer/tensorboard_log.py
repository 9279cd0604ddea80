"""TensorBoard event files of a run (``losia-cl run --tensorboard``): one folder per method.

``<out>/tensorboard/<method>/`` receives the scalars of :mod:`losia_cl.trainer.metrics_log` (``train/loss``,
``train/lr``, ``score/<task>``, ``subnet/...``, on its step axis) through
``torch.utils.tensorboard.SummaryWriter``.  A resumed method opens its folder with ``purge_step`` at its
checkpoint's step, so TensorBoard hides what the interrupted process logged after that checkpoint and
shows every step once.  The module imports ``torch.utils.tensorboard`` (which needs the ``tensorboard``
package) only when a folder is opened.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The folder of the event files inside the run folder (one subfolder per method).
TENSORBOARD_DIR = "tensorboard"
#: The extra that installs the writer's dependency.
EXTRA = "losia-cl[tensorboard]"


def tensorboard_problem() -> str | None:
    """Why ``--tensorboard`` cannot work here (one line), or None when the ``tensorboard`` package is installed."""
    if importlib.util.find_spec("tensorboard") is None:
        return f"needs the tensorboard package: pip install '{EXTRA}'"
    return None


def tensorboard_writer(out_dir: Path, method: str, purge_step: int = 0) -> Any:
    """A ``SummaryWriter`` on ``out_dir/tensorboard/<method>/``; ``purge_step`` is the global step from which
    events an earlier, interrupted process wrote are hidden (0 for a fresh start)."""
    from torch.utils.tensorboard import SummaryWriter

    from losia_cl.trainer.files import inside

    folder = inside(out_dir, TENSORBOARD_DIR, method)
    logger.info("TensorBoard events: %s", folder)
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)
