"""The "Comparison" section: one row per method with the continual-learning metrics and the costs."""

from __future__ import annotations

from ..aggregate import ReportRuns
from ..document import Paragraph, Section, TableBlock
from ..tables import comparison_table
from ..writer import FigureWriter

ORDER = 20


def section(runs: ReportRuns, writer: FigureWriter) -> Section:
    table = comparison_table([("", runs.groups)], caption="Continual-learning metrics and costs per method")
    text = ("AP, BWT, FWT, forgetting and LA are computed from each method's score matrix (see How to read this); "
            "trainable parameters, train time and peak memory come from the trainer's results.json.")
    return Section("Comparison", "comparison", [Paragraph(text), TableBlock(table)])
