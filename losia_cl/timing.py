"""Where a run's time goes: wall-clock seconds added up per named part."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

#: The parts of a method's run, in the order the report lists them (``results.json["timings"]``).
TIME_PARTS: dict[str, str] = {
    "load": "loading the model",
    "train": "optimizer steps (forward, backward, update)",
    "evaluation": "greedy generation on every test prompt, with the graded log-likelihood of the references "
                  "in the same forward pass",
    "probe": "the general probe",
    "metrics": "weight stability and subnet overlap",
    "checkpoint": "writing checkpoints (--checkpoint-every) and the saved models",
}
#: The parts done once per run, before the methods (``run.json["timings"]``).
RUN_TIME_PARTS: dict[str, str] = {
    "load": "loading the base model",
    "base_evaluation": "generation and graded scores of the base model (row 0 of every method's matrices)",
    "probe_reference": "the general probe's reference on the base model",
    "stability_reference": "the spectra of the base model's weights, for weight stability",
}


class Timings:
    """Adds the wall time of each ``with timings.part(name):`` block to ``seconds[name]``."""

    def __init__(self, seconds: dict[str, float] | None = None) -> None:
        self.seconds = seconds if seconds is not None else {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
