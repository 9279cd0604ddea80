"""The "Learning-rate budget" section: how many steps changed weights, and how much learning rate each method got.

Methods compared on one step budget do not get the same training: LoSiA's first slot of each task only scores
importance (no update), its re-localized matrices re-warm, and each method has its own peak learning rate.
The section reads ``updating_steps`` and ``lr_mass`` of results.json (sums over the tasks, mean over seeds)
and puts each method's mass beside the largest.
"""

from __future__ import annotations

from statistics import fmean

from ..aggregate import ReportRuns
from ..document import Explanation, Paragraph, Section, TableBlock
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 16


def _totals(group) -> tuple[float, float, float] | None:
    """(optimizer steps, updating steps, LR mass), each summed over the tasks and averaged over the seeds."""
    recorded = [r for r in group.results if r.lr_mass]
    if not recorded:
        return None
    return (fmean(sum(r.steps.get(t, 0) for t in r.tasks) for r in recorded),
            fmean(sum(r.updating_steps.get(t, 0) for t in r.tasks) for r in recorded),
            fmean(sum(r.lr_mass.get(t, 0.0) for t in r.tasks) for r in recorded))


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    totals = {m: t for m, g in runs.groups.items() if (t := _totals(g)) is not None}
    if not totals:
        return None
    top_method, top = max(totals.items(), key=lambda item: item[1][2])
    rows = []
    for method, (steps, updating, mass) in totals.items():
        relative = f"{mass / top[2]:.2f}" if top[2] > 0 else "—"
        per_step = f"{mass / updating:.3g}" if updating else "—"
        rows.append((method, [Cell(_number(steps)), Cell(_number(updating)), Cell(f"{mass:.4g}"), Cell(per_step),
                              Cell(relative)]))
    seeds = max(g.n for g in runs.groups.values())
    table = Table(
        caption="Steps and learning-rate mass over all tasks" + (" (mean over seeds)" if seeds > 1 else ""),
        header=["Method", "optimizer steps", "updating steps", "LR mass Σ lr", "mean lr per updating step",
                f"LR mass / {top_method}'s"],
        rows=rows, css="lr-budget",
    )
    blocks = [
        Paragraph("An updating step changes weights; LoSiA's importance-scoring-only steps (the first slot of "
                  "each task with init='importance') and steps at learning rate 0 do not. The learning-rate mass "
                  "adds up the learning rate each step applied (LoSiA: each matrix's re-warmed rate, weighted by "
                  "its subnet's entries), so it carries both the peak learning rate and the schedule: methods "
                  "with unequal masses were not trained equally hard."),
        TableBlock(table),
    ]
    explanation = Explanation("Learning-rate budget", [
        ("updating steps", "|{s : lr(s) > 0}|", "optimizer steps whose applied learning rate is positive."),
        ("LR mass", "Σ_s lr(s),  lr(s) = Σ_g n_g · lr_g(s) / Σ_g n_g",
         "over the task's steps; n_g the entries group g updates (LoSiA: |R|·|C| of each target matrix), "
         "lr_g(s) the rate it applies at step s (0 while LoSiA only scores importance)."),
    ])
    return Section("Learning-rate budget", "lr-budget", blocks, explanation)
