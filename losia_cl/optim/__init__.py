"""LoSiA: the optimizer, its configuration, schedule, localization and the LoSiA-Pro layer."""

from losia_cl.optim.build import build_losia
from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.losia import LoSiA

__all__ = ["LoSiA", "LoSiAConfig", "build_losia"]
