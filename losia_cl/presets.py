"""Named sets of command-line options (``--preset NAME``); explicit options still win.

``trace-cpu``: a TRACE comparison sized for a CPU — three TRACE tasks with short prompts and short answers
(FOMC, NumGLUE-cm, NumGLUE-ds, in TRACE's order), capped example counts and steps, the embedded SmolLM2-135M,
three paired seeds for ``run`` and the first two tasks for ``tune``.  The data folder still comes from
``--data-dir`` or ``$LOSIA_CL_DATA``.  ``examples/trace_cpu.sh`` runs the whole protocol
(tune → run --lr-from → report); ``docs/fair-comparison.md`` gives the measured times.

``cl-cpu``: O-LoRA's CL benchmark sized for a CPU — SST-2 → AG News (``cl-benchmark``; the second published
order is the reverse, ``--tasks agnews,SST-2``), 192 steps of 2 examples per task (enough for LoSiA's
asynchronous schedule to re-localize every one of SmolLM2's 30 layers in every task), 100 test and 100 eval
examples per task, the embedded SmolLM2-135M, five paired seeds for ``run`` and both tasks for ``tune``.
``docs/streams.md`` says why these tasks; ``docs/fair-comparison.md`` gives the pilot and the budget.
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

#: The ``cl-cpu`` preset's two task orders: the preset's own, and its reverse.
CL_CPU_ORDERS = ("SST-2,agnews", "agnews,SST-2")

PRESETS.register("cl-cpu", Preset(
    summary="O-LoRA's CL benchmark: SST-2, AG News (reverse order: --tasks agnews,SST-2), SmolLM2-135M, 192 steps "
            "of 2 examples per task, seeds 0-4 (docs/fair-comparison.md)",
    common={
        "stream": "cl-benchmark",
        "tasks": CL_CPU_ORDERS[0],
        "model": "smollm2-135m",
        "methods": "losia,lora,full",
        "max_train_examples": 384,
        "max_test_examples": 100,
        "max_steps": 192,
        "batch_size": 2,
        "max_length": 128,
        "eval_batch_size": 50,
    },
    run={"seeds": [0, 1, 2, 3, 4]},
    tune={"tune_tasks": 2},
))
