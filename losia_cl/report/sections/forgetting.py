"""The "Forgetting curves" section: each task's score after every stage, one line per method."""

from __future__ import annotations

from ..aggregate import MethodRuns, ReportRuns, task_curves
from ..document import Section, TableBlock
from ..formatting import fmt_stat
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 40


def _curve_table(groups: dict[str, MethodRuns], key: str, caption: str) -> Table:
    tasks = next(iter(groups.values())).tasks
    rows = []
    for method, g in groups.items():
        rows.append((method, [Cell(fmt_stat("score", s.mean, s.half_width)) for s in g.curve_stats(key)]))
    return Table(caption=caption, header=["Method", *[f"after {t}" for t in tasks]], rows=rows, css="curves")


def section(runs: ReportRuns, writer: FigureWriter) -> Section:
    from ..figures import forgetting_curves_figure

    groups = runs.groups
    tasks = next(iter(groups.values())).tasks
    curves = {method: task_curves(g.score_stats()) for method, g in groups.items()}
    caption = ("Each panel follows one task's score across the stages (base, then after each task), one line per "
               "method; the dotted line marks the stage where that task was trained, so a falling line to its right "
               "is forgetting.")
    if any(g.n > 1 for g in groups.values()):
        caption += " Shaded bands: 95% confidence intervals over seeds."
    blocks = [
        writer.figure(forgetting_curves_figure(tasks, curves), "forgetting_curves", "Forgetting curves", caption),
        TableBlock(_curve_table(groups, "average_performance_curve",
                                "Average performance AP_i over the tasks seen so far, after each stage")),
        TableBlock(_curve_table(groups, "forgetting_curve", "Average forgetting F_i after each stage")),
    ]
    return Section("Forgetting curves", "forgetting", blocks)
