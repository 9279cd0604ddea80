"""Retention of general knowledge: how far training moves a model away from its base on a fixed probe.

* :mod:`.probe` — the built-in general probe (facts, arithmetic, common phrases, instructions) and the
  rule deciding whether an answer is right (torch-free);
* :mod:`.drift` — :class:`GeneralProbe`: the base model's reference, and after every stage the mean KL
  divergence from the base and the share of the base model's right answers still right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

_LAZY = {
    "ProbeItem": ".probe",
    "load_probe": ".probe",
    "is_right": ".probe",
    "GeneralProbe": ".drift",
    "RetentionPoint": ".drift",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .drift import GeneralProbe, RetentionPoint
    from .probe import ProbeItem, is_right, load_probe

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
