"""Named sets of command-line options (``--preset NAME``); explicit options still win.

``trace-cpu``: a TRACE comparison sized for a CPU — three TRACE tasks with short prompts and short answers
(FOMC, NumGLUE-cm, NumGLUE-ds, in TRACE's order), capped example counts and steps, the embedded SmolLM2-135M,
three paired seeds for ``run`` and the first two tasks for ``tune``.  The data folder still comes from
``--data-dir`` or ``$LOSIA_CL_DATA``.  ``examples/trace_cpu.sh`` runs the whole protocol
(tune → run --lr-from → report); ``docs/fair-comparison.md`` gives the measured times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from losia_cl.registry import Registry


@dataclass(frozen=True)
class Preset:
    """Option defaults shared by ``run`` and ``tune`` (``common``) and those of each command alone."""

    summary: str
    common: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] = field(default_factory=dict)

    def defaults(self, command: str) -> dict[str, Any]:
        """The argparse defaults ``--preset`` sets for ``command`` (``run`` or ``tune``)."""
        return {**self.common, **(self.run if command == "run" else self.tune)}


PRESETS: Registry[Preset] = Registry("preset")

PRESETS.register("trace-cpu", Preset(
    summary="3 short TRACE tasks, SmolLM2-135M, capped examples and steps, seeds 0,1,2 (docs/results.md "
            "gives the measured time on 2 CPU cores)",
    common={
        "stream": "trace",
        "tasks": "FOMC,NumGLUE-cm,NumGLUE-ds",
        "model": "smollm2-135m",
        "methods": "losia,lora,full",
        "max_train_examples": 128,
        "max_test_examples": 48,
        "max_steps": 16,
        "batch_size": 8,
        "max_length": 128,
        "eval_batch_size": 48,
    },
    run={"seeds": [0, 1, 2]},
    tune={"tune_tasks": 2},
))
