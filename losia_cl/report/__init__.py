"""Forgetting-analysis reports of finished runs.

* :func:`build_report` — one run (or several seeds of one setup): a
  self-contained HTML page, a Markdown summary and every figure as PNG + SVG;
* :func:`compare_runs` — several runs side by side;
* :func:`add_cli` — registers the ``report`` and ``compare`` sub-commands.

The report reads only files (``run.json``, ``<method>/results.json``) and
depends only on :mod:`losia_cl.metrics`; importing this package imports
neither matplotlib nor torch (they load when a report is built).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

_LAZY = {
    "ReportFiles": ".writer",
    "build_report": ".build",
    "compare_runs": ".compare",
    "add_cli": ".cli",
    "load_run": ".loading",
    "RunData": ".loading",
    "MethodResult": ".loading",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .build import build_report
    from .cli import add_cli
    from .compare import compare_runs
    from .loading import MethodResult, RunData, load_run
    from .writer import ReportFiles


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
