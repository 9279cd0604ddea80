"""LoSiA's time schedule as pure functions of the global step.

Conventions: ``step`` is the 0-based index of an optimizer step (the first call of
``LoSiA.step()`` is step 0).  A *boundary* ``b`` is the moment after ``b`` steps have
completed; re-localizations happen at boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def envelope_lr(step: int, total_steps: int, lr: float, warmup_ratio: float, min_lr_ratio: float) -> float:
    """Learning-rate envelope at ``step``: linear warm-up, then cosine decay.

    With ``W = round(warmup_ratio * total_steps)``:

    * ``step < W``: ``lr * (step + 1) / W``;
    * otherwise, with ``progress = (step - W) / max(1, total_steps - W - 1)`` clipped to [0, 1]:
      ``lr * (min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * progress)) / 2)``,
      so the first step after warm-up uses ``lr`` and the last step ``min_lr_ratio * lr``.
    """
    warmup = round(warmup_ratio * total_steps)
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total_steps - warmup - 1)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def rewarm_factor(step: int, last_relocalization: int, period: int) -> float:
    """Factor in (0, 1] re-warming a matrix's learning rate after its re-localization.

    ``last_relocalization`` is the boundary of the matrix's last re-localization (-1 = never):
    the factor is ``min(1, (step - last_relocalization + 1) / period)``, a linear ramp from
    ``1/T`` on the first step after the re-localization up to 1 after ``T`` steps.
    """
    if last_relocalization < 0:
        return 1.0
    return min(1.0, (step - last_relocalization + 1) / period)


@dataclass(frozen=True)
class SlotSchedule:
    """Which slots record importance at a step, and which re-localize at a boundary.

    ``num_slots`` N (decoder layers, +1 for the head, +1 per other target outside the blocks),
    ``period`` T, ``mode`` 'async' or 'sync', and ``offset``: T when the initial subnets are
    scored on the first T steps (``init='importance'``), else 0.

    * async: step ``s >= offset`` belongs to slot ``k = (s - offset) // T``; slot ``k mod N``
      records and re-localizes at boundary ``offset + (k + 1) T``.  Hence layer i
      re-localizes at ``offset + (i + 1) T + j N T`` for j = 0, 1, ...
    * sync: every slot records during the first T steps of each cycle of N·T steps and all
      re-localize at boundaries ``offset + j N T + T``.
    * during the first ``offset`` steps every slot records (and no target is updated); all
      re-localize at boundary ``offset``.
    """

    num_slots: int
    period: int
    mode: str = "async"
    offset: int = 0

    def __post_init__(self) -> None:
        if self.num_slots < 1 or self.period < 1 or self.offset < 0 or self.mode not in ("async", "sync"):
            raise ValueError(f"invalid SlotSchedule {self}")

    def in_scoring_phase(self, step: int) -> bool:
        """True while the initial subnets are still being scored (no target updates)."""
        return step < self.offset

    def records(self, slot: int, step: int) -> bool:
        """Whether ``slot`` records importance during ``step``."""
        if step < self.offset:
            return True
        s = step - self.offset
        if self.mode == "async":
            return (s // self.period) % self.num_slots == slot
        return s % (self.num_slots * self.period) < self.period

    def relocalizes(self, slot: int, boundary: int) -> bool:
        """Whether ``slot`` re-localizes at ``boundary`` (after ``boundary`` steps completed)."""
        if self.offset > 0 and boundary == self.offset:
            return True
        b = boundary - self.offset
        if b <= 0 or b % self.period:
            return False
        if self.mode == "async":
            return (b // self.period - 1) % self.num_slots == slot
        return b % (self.num_slots * self.period) == self.period
