"""Validation of task metric names against the scorer registry.

A task names the scorer that grades it (``Task.metric``).  The names are
checked against :func:`losia_cl.metrics.scorers.scorer_names`, imported
lazily so that importing :mod:`losia_cl.streams` stays cheap.
"""

from __future__ import annotations

from losia_cl.errors import UnknownNameError


def known_metrics() -> list[str]:
    """The metric names a task may use, sorted."""
    from losia_cl.metrics.scorers import scorer_names

    return sorted(scorer_names())


def check_metric(name: object, where: str = "") -> str:
    """Return ``name`` if it is a known metric, else raise :class:`UnknownNameError`.

    ``where`` (a file and key, say) is put in front of the message so the user
    can find the bad value.
    """
    known = known_metrics()
    if isinstance(name, str) and name in known:
        return name
    err = UnknownNameError("metric", str(name), known)
    if where:
        err.args = (f"{where}: {err}",)
    raise err
