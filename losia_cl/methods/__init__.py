"""Training methods behind one small contract (:class:`Method`), registered by name.

Adding a method is adding a module ``losia_cl/methods/<name>.py`` holding a dataclass decorated
with ``@register_method("<name>")``: every module of this package is imported when the package is.
Methods living outside the package register the same way and are found through

* the entry-point group ``losia_cl.methods`` of an installed distribution
  (``[project.entry-points."losia_cl.methods"] my-method = "my_package.my_method"``), or
* the ``LOSIA_CL_METHODS`` environment variable: comma-separated module names to import.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from importlib import metadata

from losia_cl.errors import ConfigError
from losia_cl.methods.base import (
    METHODS,
    Method,
    RegularizedMethod,
    SubnetMethod,
    TargetWeight,
    TaskContext,
    TaskData,
    create_method,
    option_defaults,
    option_help,
    options_markdown,
    register_method,
)

__all__ = ["METHODS", "ENTRY_POINT_GROUP", "ENV_VAR", "Method", "RegularizedMethod", "SubnetMethod", "TargetWeight",
           "TaskContext", "TaskData",
           "create_method", "method_names", "option_defaults", "option_help", "options_markdown", "register_method"]

#: Entry-point group of method modules shipped by other distributions.
ENTRY_POINT_GROUP = "losia_cl.methods"
#: Environment variable naming further method modules (comma-separated).
ENV_VAR = "LOSIA_CL_METHODS"


def method_names() -> list[str]:
    """Names of the registered methods."""
    return METHODS.names()


def _import_plugin(name: str, source: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as error:
        raise ConfigError(f"{source}: cannot import the method module {name!r} "
                          f"({type(error).__name__}: {error})") from error


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _import_plugin(entry.module, f"entry point {entry.name!r} of group {ENTRY_POINT_GROUP!r}")
    for name in filter(None, (part.strip() for part in os.environ.get(ENV_VAR, "").split(","))):
        _import_plugin(name, f"${ENV_VAR}")


_discover()
