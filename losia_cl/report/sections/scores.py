"""The "Score matrices" section: one heatmap per method, with a table of the same numbers."""

from __future__ import annotations

from typing import Any

from ..aggregate import ReportRuns
from ..document import Paragraph, Section, TableBlock
from ..tables import score_table, task_table
from ..writer import FigureWriter, slug

ORDER = 30


def section(runs: ReportRuns, writer: FigureWriter) -> Section:
    if runs.summary_view:
        return _summary(runs, writer)
    from ..figures import score_matrix_figure

    blocks: list[Any] = [Paragraph(
        "One heatmap per method. Rows: the base model, then the model after each training stage; columns: the "
        "evaluated tasks. Cells print the score on a 0-1 scale with 3 decimals; the outlined diagonal is each "
        "task right after it was trained. Below the diagonal: retention of earlier tasks; above it: zero-shot "
        "transfer to tasks not trained yet."
    )]
    for method, g in runs.groups.items():
        fig = score_matrix_figure(method, g.tasks, g.mean_scores(), g.n)
        caption = "Score after each stage (rows) on each task (columns)"
        caption += f", mean over {g.n} seeds; the table gives the 95% confidence intervals." if g.n > 1 else "."
        blocks.append(writer.figure(fig, f"score_matrix_{slug(method)}", f"Score matrix: {method}", caption))
        blocks.append(TableBlock(score_table(g)))
    return Section("Score matrices", "scores", blocks)


def _summary(runs: ReportRuns, writer: FigureWriter) -> Section:
    """Long streams: heatmaps without numbers and one table row per task instead of the full matrices."""
    from ..figures import score_matrix_figure

    t = len(runs.tasks)
    blocks: list[Any] = [Paragraph(
        f"One heatmap per method. Rows: the base model, then the model after each training stage; columns: the "
        f"evaluated tasks. With {t} tasks the cells carry no numbers and every few tasks are labelled; the table "
        "gives each task's score right after its training (the diagonal) and after the last task. The full "
        "matrices are in each run directory's <method>/scores.csv."
    )]
    for method, g in runs.groups.items():
        fig = score_matrix_figure(method, g.tasks, g.mean_scores(), g.n, annotate=False)
        caption = "Score after each stage (rows) on each task (columns), colour only"
        caption += f", mean over {g.n} seeds." if g.n > 1 else "."
        blocks.append(writer.figure(fig, f"score_matrix_{slug(method)}", f"Score matrix: {method}", caption))
    blocks.append(TableBlock(task_table(runs.groups)))
    return Section("Score matrices", "scores", blocks)
