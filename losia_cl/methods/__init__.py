"""Training methods behind one small interface (:class:`Method`), registered by name.

Adding a method is adding a module that registers a class with ``@METHODS.register("name")``.
"""

from losia_cl.methods import dora, full, lora, losia, pissa  # noqa: F401  (registration)
from losia_cl.methods.base import METHODS, Method, TaskContext, create_method

__all__ = ["METHODS", "Method", "TaskContext", "create_method", "method_names"]


def method_names() -> list[str]:
    """Names of the registered methods."""
    return METHODS.names()
