"""Method specs: a registered method's name, optionally followed by ``+replay`` (experience replay).

``losia+replay`` trains LoSiA with examples of earlier tasks replayed into every batch (see
``losia_cl.trainer.replay``); it is its own row of the results, beside plain ``losia``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The suffix of a method spec that replays earlier tasks' examples (case-insensitive, like method names).
REPLAY_SUFFIX = "+replay"


@dataclass(frozen=True)
class MethodSpec:
    """What a name in ``methods`` asks for: the registered ``method`` and whether it replays."""

    name: str  #: the spec as given (the results' row and folder name)
    method: str  #: the registered method it trains
    replay: bool


def parse_method_spec(name: str) -> MethodSpec:
    """``losia+replay`` → ``MethodSpec("losia+replay", "losia", True)``; a plain name → ``replay`` False.

    >>> parse_method_spec("LoRA+Replay").method
    'LoRA'
    """
    if name.lower().endswith(REPLAY_SUFFIX) and len(name) > len(REPLAY_SUFFIX):
        return MethodSpec(name, name[: -len(REPLAY_SUFFIX)], True)
    return MethodSpec(name, name, False)
