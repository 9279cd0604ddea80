"""A CSV logger that keeps every metric value (Avalanche's ``CSVLogger`` keeps a fixed set of columns).

Avalanche's ``CSVLogger`` writes ``training_results.csv`` and ``eval_results.csv`` with fixed
columns filled from its own metric names (``Top1_Acc_Exp``, ``Loss_Exp``,
``ExperienceForgetting``, ...), so losia-cl's task scores, subnet overlap and stability never
reach it.  :class:`MetricsCSVLogger` writes one row per metric value instead — every metric of
the evaluation plugin, Avalanche's and losia-cl's — in ``<log_folder>/metrics.csv``::

    metric,phase,stream,task,experience,x,value,name
    TaskScore,eval,test,0,0,0,0.25,TaskScore/eval_phase/test_stream/Task000/Exp000

``phase``, ``stream``, ``task`` and ``experience`` are parsed from Avalanche's metric name
(empty where the name has no such part); ``x`` is the metric's x position (training
iterations); ``name`` is the full metric name.  Values that are not numbers (images, tensors)
are skipped.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

from avalanche.logging import BaseLogger

logger = logging.getLogger(__name__)

COLUMNS = ("metric", "phase", "stream", "task", "experience", "x", "value", "name")


def parse_metric_name(name: str) -> dict[str, str]:
    """``TaskScore/eval_phase/test_stream/Task000/Exp001`` -> metric, phase, stream, task, experience."""
    parts = {"metric": [], "phase": "", "stream": "", "task": "", "experience": ""}
    for part in name.split("/"):
        if part.endswith("_phase") and not parts["phase"]:
            parts["phase"] = part[: -len("_phase")]
        elif part.endswith("_stream") and not parts["stream"]:
            parts["stream"] = part[: -len("_stream")]
        elif part.startswith("Task") and part[4:].isdigit() and parts["task"] == "":
            parts["task"] = str(int(part[4:]))
        elif part.startswith("Exp") and part[3:].isdigit() and parts["experience"] == "":
            parts["experience"] = str(int(part[3:]))
        else:
            parts["metric"].append(part)
    return {**parts, "metric": "/".join(parts["metric"])}


class MetricsCSVLogger(BaseLogger):
    """Every numeric metric value as a row of ``<log_folder>/metrics.csv`` (flushed at once).

    Args:
        log_folder: the folder (created if needed; default ``csvlogs``, as Avalanche's ``CSVLogger``).
        filename: the file's name in it.
    """

    def __init__(self, log_folder: str | os.PathLike[str] | None = None, filename: str = "metrics.csv") -> None:
        super().__init__()
        self.path = Path(log_folder if log_folder is not None else "csvlogs") / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self._file.flush()

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            logger.debug("metrics.csv: %s is a %s, not a number; skipped", name, type(value).__name__)
            return
        fields = parse_metric_name(name)
        self._writer.writerow([fields["metric"], fields["phase"], fields["stream"], fields["task"],
                               fields["experience"], x_plot, repr(float(value)), name])
        self._file.flush()

    def close(self) -> None:
        """Close the file (rows are flushed as they are written, so reading it earlier is fine too)."""
        self._file.close()

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None and not file.closed:
            file.close()
