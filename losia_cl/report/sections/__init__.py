"""The sections of a report: one module each, found in this package and put in page order.

A section module defines two names::

    ORDER = 70   # its place in the page: sections are sorted by ORDER (gaps of 10 leave room)

    def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
        ...      # None when the section does not apply to these runs

``runs`` (:class:`~losia_cl.report.aggregate.ReportRuns`) holds the run
directories and each method's results over the seeds; ``writer``
(:class:`~losia_cl.report.writer.FigureWriter`) renders the section's
figures.  A section that explains its quantities sets
:attr:`Section.explanation`; the formulas then appear in "How to read this".
Adding a section is adding one module here; modules whose name starts with
``_`` are skipped.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from losia_cl.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..aggregate import ReportRuns
    from ..document import Section
    from ..writer import FigureWriter

__all__ = ["SectionSpec", "report_sections"]


@dataclass(frozen=True)
class SectionSpec:
    """A section module: its name (the module's), its place in the page and its builder."""

    name: str
    order: int
    build: Callable[[ReportRuns, FigureWriter], Section | None]


def report_sections() -> list[SectionSpec]:
    """Every section module of this package, sorted by ``ORDER``.

    Raises ``TypeError`` for a module that lacks ``ORDER`` or ``section`` and
    ``ValueError`` when two modules claim the same ``ORDER``.
    """
    registry = Registry[SectionSpec]("report section")
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        order, build = getattr(module, "ORDER", None), getattr(module, "section", None)
        if not isinstance(order, int) or not callable(build):
            raise TypeError(f"report section module {module.__name__} must define ORDER (an int) and section()")
        registry.register(info.name, SectionSpec(info.name, order, build))
    specs = sorted((registry.get(name) for name in registry), key=lambda s: s.order)
    for a, b in zip(specs, specs[1:]):
        if a.order == b.order:
            raise ValueError(f"report sections {a.name!r} and {b.name!r} share ORDER = {a.order}")
    return specs
