"""losia-cl: continual learning for language models, built around LoSiA.

Importing :mod:`losia_cl` is cheap: heavy modules (torch, transformers,
avalanche) are imported only when the names that need them are first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "LoSiA": "losia_cl.optim.losia",
    "LoSiAConfig": "losia_cl.optim.config",
    "build_losia": "losia_cl.optim.build",
    "unpatch": "losia_cl.optim.pro",
    "LosiaError": "losia_cl.errors",
    "ConfigError": "losia_cl.errors",
    "DataError": "losia_cl.errors",
    "UnknownNameError": "losia_cl.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from losia_cl.errors import ConfigError, DataError, LosiaError, UnknownNameError
    from losia_cl.optim.build import build_losia
    from losia_cl.optim.config import LoSiAConfig
    from losia_cl.optim.losia import LoSiA
    from losia_cl.optim.pro import unpatch


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
