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
    if runs.summary_view:
        return _summary(runs, writer)
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


def _summary(runs: ReportRuns, writer: FigureWriter) -> Section:
    """Long streams: AP_i and F_i after each stage (one panel each) instead of one panel per task."""
    from ..figures import stage_curves_figure

    groups = runs.groups
    keys = (("average_performance_curve", "AP_i"), ("forgetting_curve", "F_i"))
    stats = {m: {key: g.curve_stats(key) for key, _ in keys} for m, g in groups.items()}
    panels = [
        ("average performance AP_i over the tasks seen so far", "AP_i",
         {m: [(s.mean, s.half_width) for s in st["average_performance_curve"]] for m, st in stats.items()}),
        ("average forgetting F_i", "F_i",
         {m: [(s.mean, s.half_width) for s in st["forgetting_curve"]] for m, st in stats.items()}),
    ]
    caption = (f"With {len(runs.tasks)} tasks the curves of single tasks are summarized: after each stage i, the "
               "average performance AP_i over tasks 1..i (left) and the average forgetting F_i (right), one line "
               "per method.")
    if any(g.n > 1 for g in groups.values()):
        caption += " Shaded bands: 95% confidence intervals over seeds."
    rows = []
    for i, task in enumerate(runs.tasks):
        rows.append((f"after {task}", [Cell(fmt_stat("score", st[key][i].mean, st[key][i].half_width))
                                       for key, _ in keys for st in stats.values()]))
    table = Table(caption="Average performance AP_i and average forgetting F_i after each stage",
                  header=["stage", *list(groups) * len(keys)], rows=rows,
                  groups=[(label, len(groups)) for _, label in keys], css="curves")
    return Section("Forgetting curves", "forgetting", [
        writer.figure(stage_curves_figure(runs.tasks, panels), "forgetting_curves", "Forgetting curves", caption),
        TableBlock(table),
    ])
