"""The "Graded forgetting" section: the teacher-forced log-likelihood of the reference answers after every stage.

Exact match jumps between 0 and 1; the mean log-likelihood per answer token of the reference answers
(``loglik_scores`` in results.json) moves smoothly, so it shows forgetting that exact match hides.
"""

from __future__ import annotations

from typing import Any

from losia_cl.metrics.baselines import MajorityBaseline

from ..aggregate import MethodRuns, ReportRuns, task_curves
from ..document import Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_score, fmt_stat
from ..references import majority_baselines
from ..stats import summarize
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


def _baseline_text(task: str, baselines: dict[str, list[MajorityBaseline]]) -> tuple[str, str]:
    found = baselines.get(task) or []
    if not found:
        return "—", "no prediction file holds this task's references"
    shares = sorted({b.share for b in found})
    answer = found[0].answer if len(found[0].answer) <= 16 else found[0].answer[:15] + "…"
    text = fmt_score(shares[0]) if len(shares) == 1 else f"{fmt_score(shares[0])}–{fmt_score(shares[-1])}"
    return f"{text} ({answer!r})", f"always answering {found[0].answer!r}: {found[0].count} of {found[0].total} test examples"


def transfer_table(runs: ReportRuns, groups: dict[str, MethodRuns]) -> Table:
    """Per task: its majority-class baseline, the base model's exact-match score, and per method the exact-match
    score before the task was trained and the graded forward transfer ``L[j−1, j] − L[0, j]``."""
    baselines = majority_baselines(runs.runs)
    first = next(iter(groups.values()))
    rows = []
    for j, task in enumerate(first.tasks):
        text, title = _baseline_text(task, baselines)
        base = first.cell_stat(0, j)
        cells = [Cell(text, title=title), Cell(fmt_stat("score", base.mean, base.half_width))]
        for g in groups.values():
            if j == 0:
                cells += [Cell("—", title="the first task is trained first"), Cell("—")]
                continue
            before = g.cell_stat(j, j)
            graded = summarize([float(r.loglik_scores[j, j] - r.loglik_scores[0, j])
                                for r in g.results if r.loglik_scores is not None])
            cells += [Cell(fmt_stat("score", before.mean, before.half_width)),
                      Cell(fmt_stat("score", graded.mean, graded.half_width))]
        rows.append((task, cells))
    caption = "Forward transfer per task: exact match against the majority-class baseline, and graded"
    if first.n > 1:
        caption += " (mean ± 95% CI over seeds)"
    return Table(caption=caption,
                 header=["task", "majority baseline", "base S[0, j]",
                         *["S[j−1, j] (before training)", "graded L[j−1, j] − L[0, j]"] * len(groups)],
                 rows=rows, groups=[("", 2), *[(m, 2) for m in groups]], css="scores",
                 notes=["majority baseline: the share of the task's test examples whose reference is the most "
                        "frequent one (in brackets): the exact-match accuracy of always giving that answer, read "
                        "from the run's prediction files. S: exact-match scores; L: mean answer "
                        "log-likelihood (nats per token). FWT is the mean over tasks 2..T of S[j−1, j] − S[0, j]; "
                        "graded FWT the same on L."])


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
    blocks.append(Paragraph(
        "Forward transfer: exact-match FWT compares each task's score before its training, S[j−1, j], with the "
        "base model's, S[0, j]. When the model never gives a reference verbatim before training the task, both "
        "are 0 and FWT is 0 at the floor of the scale, whatever the earlier tasks taught; the comparison table "
        "marks such cells '(floor)'. The majority-class baseline shows what a constant answer scores on each "
        "test split; the graded FWT shows whether the earlier tasks made the task's references more likely."))
    blocks.append(TableBlock(transfer_table(runs, groups)))
    blocks.extend(TableBlock(loglik_table(g)) for g in groups.values())
    explanation = Explanation("Graded forgetting", [
        ("graded score", "L[i, j] = (1/N_j) Σ_tokens log p(answer token | prompt, earlier answer tokens)",
         "after stage i, over the N_j answer tokens (EOS included) of task j's test references; ≤ 0, higher is "
         "better."),
        ("graded BWT, FWT, forgetting", "the formulas of BWT, FWT and F with L in place of S",
         "in nats per token; negative BWT = the earlier tasks' references became less likely; positive FWT = "
         "the earlier tasks made a task's references more likely before it was trained."),
        ("majority-class baseline", "max_a |{k : reference_k = a}| / N",
         "over the N test examples of a task, references compared after stripping whitespace: the exact-match "
         "accuracy of always giving the most frequent reference."),
    ])
    return Section("Graded forgetting", "graded", blocks, explanation)
