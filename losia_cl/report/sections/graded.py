"""The "Graded forgetting" section: the teacher-forced log-likelihood of the reference answers after every stage.

Exact match jumps between 0 and 1; the mean log-likelihood per answer token of the reference answers
(``loglik_scores`` in results.json) moves smoothly, so it shows forgetting that exact match hides.
"""

from __future__ import annotations

from typing import Any

from ..aggregate import MethodRuns, ReportRuns, task_curves
from ..document import Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_stat
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 42


def loglik_table(g: MethodRuns) -> Table:
    cells = g.loglik_stats()
    assert cells is not None
    tasks = g.tasks
    rows = []
    for i, row in enumerate(cells):
        rows.append(("base" if i == 0 else f"after {tasks[i - 1]}",
                     [Cell(fmt_stat("score", st.mean, st.half_width), css="diag" if i == j + 1 else "")
                      for j, st in enumerate(row)]))
    caption = f"Mean answer log-likelihood (nats per token) of {g.method}"
    if g.n > 1:
        caption += f" (mean ± 95% CI over {g.n} seeds)"
    return Table(caption=caption, header=["after \\ task", *tasks], rows=rows, css="scores")


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    from ..figures import forgetting_curves_figure

    groups = {m: g for m, g in runs.groups.items() if g.loglik_stats() is not None}
    if not groups:
        return None
    tasks = next(iter(groups.values())).tasks
    curves = {method: task_curves(g.loglik_stats()) for method, g in groups.items()}
    caption = ("Each panel follows one task's mean answer log-likelihood (nats per token, higher = the reference "
               "answers are more likely) across the stages, one line per method; the dotted line marks the stage "
               "where the task was trained, so a falling line to its right is graded forgetting.")
    blocks: list[Any] = [
        Paragraph("After every stage each task's test references are scored teacher-forced: the mean, over every "
                  "answer token (EOS included), of log p(token | prompt, earlier answer tokens), the trainer's "
                  "answer loss with the sign flipped. BWT and forgetting on this matrix use the formulas of the "
                  "score matrix; they are in nats per token (BWT −0.5: the earlier tasks' answers lost 0.5 nats "
                  "per token by the end)."),
        writer.figure(forgetting_curves_figure(tasks, curves, ylabel="log-likelihood", bounded=False),
                      "graded_forgetting", "Graded forgetting curves", caption),
    ]
    blocks.extend(TableBlock(loglik_table(g)) for g in groups.values())
    explanation = Explanation("Graded forgetting", [
        ("graded score", "L[i, j] = (1/N_j) Σ_tokens log p(answer token | prompt, earlier answer tokens)",
         "after stage i, over the N_j answer tokens (EOS included) of task j's test references; ≤ 0, higher is "
         "better."),
        ("graded BWT, forgetting", "the formulas of BWT and F with L in place of S",
         "in nats per token; negative BWT = the earlier tasks' references became less likely."),
    ])
    return Section("Graded forgetting", "graded", blocks, explanation)
