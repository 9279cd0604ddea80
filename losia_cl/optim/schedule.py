"""LoSiA's time schedule as pure functions of the global step.

Conventions: ``step`` is the 0-based index of an optimizer step (the first call of
``LoSiA.step()`` is step 0).  A *boundary* ``b`` is the moment after ``b`` steps have
completed; re-localizations happen at boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def envelope_lr(
    step: int, total_steps: int, lr: float, warmup_ratio: float, min_lr_ratio: float, from_zero: bool = False
) -> float:
    """Learning-rate envelope at ``step``: linear warm-up, then cosine decay.

    With ``W = round(warmup_ratio * total_steps)``:

    * ``step < W``: ``lr * (step + 1) / W`` (``lr * step / W`` with ``from_zero``: the first step
      runs at 0, as in Hugging Face's schedules and the official LoSiA code);
    * otherwise, with ``progress = (step - W) / max(1, total_steps - W - 1)`` clipped to [0, 1]:
      ``lr * (min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * progress)) / 2)``,
      so the first step after warm-up uses ``lr`` and the last step ``min_lr_ratio * lr``.
    """
    warmup = round(warmup_ratio * total_steps)
    if step < warmup:
        return lr * (step + (0 if from_zero else 1)) / warmup
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total_steps - warmup - 1)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def rewarm_factor(step: int, last_relocalization: int, period: int, from_zero: bool = False) -> float:
    """Factor in [0, 1] re-warming a matrix's learning rate after its re-localization.

    ``last_relocalization`` is the boundary of the matrix's last re-localization (-1 = never):
    the factor is ``min(1, (step - last_relocalization + 1) / period)``, a linear ramp from
    ``1/T`` on the first step after the re-localization up to 1 after ``T`` steps; with
    ``from_zero`` it is ``min(1, (step - last_relocalization) / period)`` (0 on that first step,
    as in the official code).
    """
    if last_relocalization < 0:
        return 1.0
    return min(1.0, (step - last_relocalization + (0 if from_zero else 1)) / period)


def official_warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Warm-up length of the official code: ``int(total_steps * warmup_ratio)`` (truncated, not rounded)."""
    return int(total_steps * warmup_ratio)


def official_lr_factor(
    step: int,
    last_relocalization: int | None,
    total_steps: int,
    period: int,
    warmup_ratio: float,
    min_lr_ratio: float,
) -> float:
    """Learning-rate factor of the official LoSiA code at ``step`` (``LoSiAConfig.envelope='official'``).

    With ``N = total_steps``, ``W = int(warmup_ratio * N)``, ``T = period`` and
    ``C(x) = min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * x)) / 2``:

    * ``step < W``: ``step / W``; the first warm-up overrides any re-warm;
    * a target matrix whose last re-localization was at boundary ``r`` (``r = 0`` before its first,
      ``last_relocalization < 0``), when ``step - r < T``: ``(step - r) / T * C(r / (N - W))``, the ramp
      times the cosine frozen at the re-localization's progress ``r / (N - W)``;
    * otherwise ``C((step - W) / (N - W))``.

    ``last_relocalization=None`` is a parameter that never re-localizes (the official dense Adam
    groups): warm-up and cosine only.
    """
    warmup = official_warmup_steps(total_steps, warmup_ratio)
    if step < warmup:
        return step / warmup
    span = max(1, total_steps - warmup)
    if last_relocalization is not None:
        restart = max(0, last_relocalization)
        if step - restart < period:
            return (step - restart) / period * _cosine(restart / span, min_lr_ratio)
    return _cosine((step - warmup) / span, min_lr_ratio)


def _cosine(progress: float, min_lr_ratio: float) -> float:
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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


#: the paper's slot length T, the longest slot :func:`fit_schedule` picks
MAX_PERIOD = 50
#: the sync fallback's slot is at most 1/SYNC_SHARE of the task (:func:`fit_schedule`)
SYNC_SHARE = 16


def fit_schedule(
    num_steps: int, num_slots: int, init: str = "importance", min_period: int = 4, max_period: int = MAX_PERIOD
) -> tuple[int, str]:
    """Slot length T and schedule mode that let every slot record and re-localize within ``num_steps``.

    ``init='importance'`` spends one more slot first (scoring all matrices).  The async schedule
    needs ``(num_slots + 1) * T < num_steps`` (``num_slots * T`` with a random init): the last slot
    re-localizes before the last step, so every layer trains on a subnet chosen from this data.
    ``T = min(max_period, (num_steps - 1) // (num_slots + 1))``; when that is below ``min_period``,
    every layer records together instead: ``'sync'`` with ``T = min(min_period, num_steps // 16)``
    (at least 1).  A sync recording step computes every matrix's full gradient, as a full
    fine-tuning step does, and with ``init='importance'`` the task's first two slots record, so
    this T keeps the recording to at most an eighth of the task (two steps in tasks under 32 steps).
    """
    if num_steps < 1 or num_slots < 1 or min_period < 1 or max_period < min_period:
        raise ValueError(f"fit_schedule: invalid sizes {num_steps=}, {num_slots=}, {min_period=}, {max_period=}")
    extra = 1 if init == "importance" else 0
    period = min(max_period, (num_steps - 1) // (num_slots + extra))
    if period >= min_period:
        return period, "async"
    return max(1, min(min_period, num_steps // SYNC_SHARE)), "sync"


def relocalization_counts(schedule: SlotSchedule, num_steps: int) -> list[int]:
    """How many times each slot re-localizes at boundaries 1..``num_steps`` under ``schedule``."""
    return [sum(schedule.relocalizes(slot, b) for b in range(1, num_steps + 1)) for slot in range(schedule.num_slots)]
