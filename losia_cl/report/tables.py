"""Table models of the report (rendered by :mod:`.html` and :mod:`.markdown`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .aggregate import MethodRuns
from .formatting import fmt_p, fmt_score, fmt_stat
from .significance import PairedFamily, bound, paired_family
from .stats import ALPHA, CONFIDENCE, Stat

__all__ = ["Column", "COLUMNS", "CL_COLUMNS", "GRADED_COLUMNS", "RETENTION_COLUMNS", "COST_COLUMNS", "TESTED_COLUMNS",
           "Cell", "Table", "comparison_table", "report_family", "score_table", "task_table"]


@dataclass(frozen=True)
class Column:
    """A column of the comparison table: ``key`` into :meth:`MethodResult.metric`."""

    key: str
    label: str
    higher_is_better: bool
    kind: str  # score | count | seconds | bytes
    description: str


CL_COLUMNS = (
    Column("average_performance", "AP", True, "score", "average performance after the last task"),
    Column("bwt", "BWT", True, "score", "backward transfer"),
    Column("fwt", "FWT", True, "score", "forward transfer"),
    Column("forgetting", "Forgetting", False, "score", "average forgetting"),
    Column("learning_accuracy", "LA", True, "score", "learning accuracy (mean of the diagonal)"),
)
#: the same metrics on the graded score matrix (mean answer log-likelihood, nats per token).
GRADED_COLUMNS = (
    Column("loglik_bwt", "BWT (log-lik)", True, "score",
           "backward transfer on the mean answer log-likelihood (nats per token)"),
    Column("loglik_fwt", "FWT (log-lik)", True, "score",
           "forward transfer on the mean answer log-likelihood (nats per token)"),
    Column("loglik_forgetting", "Forgetting (log-lik)", False, "score",
           "average forgetting on the mean answer log-likelihood (nats per token)"),
)
#: the general probe after the last task.
RETENTION_COLUMNS = (
    Column("retention_kl", "Probe KL", False, "score",
           "general probe: mean KL(base ‖ model) per reference token after the last task (nats)"),
    Column("retention_kept", "Probe kept", True, "score",
           "general probe: share of the base model's right answers still right after the last task"),
)
COST_COLUMNS = (
    Column("trainable_parameters", "Trainable params", False, "count", "parameters the method trains"),
    Column("train_seconds", "Train time", False, "seconds", "wall-clock training time over all tasks"),
    Column("peak_memory_bytes", "Peak memory", False, "bytes", "peak accelerator (or host) memory"),
)
COLUMNS = CL_COLUMNS + GRADED_COLUMNS + RETENTION_COLUMNS + COST_COLUMNS
#: the columns tested pair by pair over seeds (costs are not: time and memory depend on the machine's load).
TESTED_COLUMNS = CL_COLUMNS + GRADED_COLUMNS + RETENTION_COLUMNS

#: marker of a cell not significantly different from its column's best (Holm-adjusted paired t-test).
NS_MARK = "†"


def report_family(groups: Mapping[str, MethodRuns]) -> PairedFamily:
    """The report's family of paired tests: every pair of methods on every tested column, Holm-adjusted."""
    return paired_family(groups, TESTED_COLUMNS)


@dataclass
class Cell:
    """One table cell: the text, and whether it is the column's best or not significantly different from it."""

    text: str
    best: bool = False
    not_significant: bool = False
    title: str = ""
    css: str = ""


@dataclass
class Table:
    """A rectangular table with an optional row of column groups above the header."""

    caption: str
    header: list[str]
    rows: list[tuple[str, list[Cell]]]
    groups: list[tuple[str, int]] = field(default_factory=list)  # (label, number of columns), after the row label
    notes: list[str] = field(default_factory=list)
    css: str = ""


def _title(stat: Stat, kind: str, seeds: Sequence[int | None]) -> str:
    if stat.n < 2:
        return ""
    parts = [f"seed {s}: {fmt_stat(kind, v, None)}" for s, v in zip(seeds, stat.values)]
    return "; ".join(parts)


def _column_cells(
    column: Column, methods: Sequence[str], runs: Mapping[str, MethodRuns], notes: list[str], section: str,
    family: PairedFamily | None,
) -> list[Cell]:
    stats: dict[str, Stat] = {m: runs[m].stat(column.key) for m in methods if m in runs}
    bounds = {m: bound(runs[m], column.key) for m in stats}
    cells: list[Cell] = []
    for m in methods:
        if m not in runs:
            cells.append(Cell("—", title="not finished", css="missing"))
            continue
        st = stats[m]
        text = fmt_stat(column.kind, st.mean, st.half_width)
        if column.key == "trainable_parameters" and st.mean is not None and (st.std in (None, 0.0)):
            total = runs[m].results[0].total_parameters
            if total:
                text = f"{text} ({100.0 * st.mean / total:.2f}%)"
        at_bound = st.mean is not None and bounds[m] is not None
        if at_bound:
            text = f"{text} ({bounds[m]})"
        cells.append(Cell(text, title=_title(st, column.kind, runs[m].seeds), css="bound" if at_bound else ""))
    defined = {m: s for m, s in stats.items() if s.mean is not None}
    if not defined:
        return cells
    pick = max if column.higher_is_better else min
    best_value = pick(s.mean for s in defined.values())  # type: ignore[type-var]
    best = [m for m, s in defined.items() if s.mean == best_value]
    for m, cell in zip(methods, cells):
        if m in best and not bounds[m]:  # a value at the scale's bound is not ranked, even when it is the best
            cell.best = True
    if family is None or column not in TESTED_COLUMNS:
        return cells
    prefix = f"{section}: " if section else ""
    alike: list[str] = []
    for m, cell in zip(methods, cells):
        if m not in defined or m in best:
            continue
        test = family.get(column.key, best[0], m)
        if test is None or test.difference.n < 2:
            notes.append(f"{prefix}{column.label}: {best[0]} vs {m} cannot be tested (fewer than 2 paired seeds)")
        elif test.p_adjusted is None:
            if test.difference.mean != 0:
                notes.append(f"{prefix}{column.label}: {best[0]} vs {m} cannot be tested (the same difference in "
                             "every seed)")
        elif test.p_adjusted >= ALPHA:
            cell.not_significant = True
            alike.append(f"{m} (p = {fmt_p(test.difference.p)}, p_adj = {fmt_p(test.p_adjusted)})")  # type: ignore[arg-type]
    if alike:
        notes.append(f"{prefix}{column.label}: not significantly different from the best, {best[0]}, after Holm: "
                     + ", ".join(alike))
    return cells


def comparison_table(
    sections: Sequence[tuple[str, Mapping[str, MethodRuns]]],
    columns: Sequence[Column] = COLUMNS,
    caption: str = "Comparison of methods",
) -> Table:
    """Rows: methods (union, in order of first appearance); one column group per section.

    Best values per column and section are marked (higher is better for AP/BWT/FWT/LA, lower for forgetting,
    parameters, time and memory), except cells whose metric sits at a bound of its scale (marked "(floor)" or
    "(ceiling)", see :func:`~.significance.bound`), which are never marked best.  With several seeds a cell reads
    ``mean ± half width`` of the 95 % t-interval, and on the tested columns a cell whose paired difference
    to the best is not significant after Holm's correction over the section's family of paired tests
    (:func:`report_family`) is marked :data:`NS_MARK` and explained in :attr:`Table.notes`.
    """
    methods: list[str] = []
    for _, runs in sections:
        methods.extend(m for m in runs if m not in methods)
    optional = GRADED_COLUMNS + RETENTION_COLUMNS  # left out when no run measured them (e.g. --no-retention)
    columns = [c for c in columns if c not in optional
               or any(r.stat(c.key).mean is not None for _, runs in sections for r in runs.values())]
    notes: list[str] = []
    per_method: dict[str, list[Cell]] = {m: [] for m in methods}
    header = ["Method"]
    groups: list[tuple[str, int]] = []
    families: list[PairedFamily] = []
    for label, runs in sections:
        family = report_family(runs) if any(r.n > 1 for r in runs.values()) else None
        if family is not None:
            families.append(family)
        for column in columns:
            cells = _column_cells(column, methods, runs, notes, label, family)
            for m, cell in zip(methods, cells):
                per_method[m].append(cell)
            header.append(column.label)
        groups.append((label, len(columns)))
    max_n = max((r.n for _, runs in sections for r in runs.values()), default=1)
    floors = any(c.css == "bound" for cells in per_method.values() for c in cells)
    head: list[str] = []
    if max_n > 1:
        sizes = ", ".join(str(f.size) for f in families) or "0"
        head.append(
            f"Cells read mean ± half width of the {CONFIDENCE:.0%} t-interval over seeds; bold = best mean in the "
            f"column; {NS_MARK} = not significantly different from the best: paired t-test on the per-seed "
            f"differences, p-values Holm-adjusted across the {sizes} paired tests of the report (every pair of "
            f"methods on every column up to the costs; see Paired differences), p_adj ≥ {ALPHA}. Costs are not "
            "tested.")
        counts = sorted({r.n for _, runs in sections for r in runs.values()})
        if len(counts) > 1:
            head.append("Methods were finished by different numbers of seeds: " + ", ".join(
                f"{m} n = {runs[m].n}" for _, runs in sections for m in runs))
    else:
        head.append("Bold = best value in the column (higher is better for AP, BWT, FWT, LA and probe kept; "
                    "lower for forgetting, probe KL, trainable parameters, time and memory).")
    if floors:
        head.append("(floor) / (ceiling): every score the metric reads is at the bottom (top) of its scale in every "
                    "seed, e.g. FWT from exact-match scores that are all 0 before and after the earlier tasks; the "
                    "value shows the scale's limit, not an absence (or perfection) of the effect, and is never "
                    "marked best.")
    notes[:0] = head
    if len(sections) == 1 and not sections[0][0]:
        groups = []
    return Table(caption=caption, header=header, rows=[(m, per_method[m]) for m in methods],
                 groups=groups, notes=notes, css="comparison")


def score_table(runs: MethodRuns) -> Table:
    """The method's score matrix as a table: rows base/after task i, columns tasks (diagonal marked)."""
    tasks = runs.tasks
    cells = runs.score_stats()
    rows: list[tuple[str, list[Cell]]] = []
    for i, row in enumerate(cells):
        label = "base" if i == 0 else f"after {tasks[i - 1]}"
        out = []
        for j, st in enumerate(row):
            text = fmt_score(st.mean) if st.half_width is None else f"{fmt_score(st.mean)} ± {fmt_score(st.half_width)}"
            out.append(Cell(text, title=_title(st, "score", runs.seeds), css="diag" if i == j + 1 else ""))
        rows.append((label, out))
    caption = f"Score matrix of {runs.method}"
    if runs.n > 1:
        caption += f" (mean ± 95% CI over {runs.n} seeds)"
    return Table(caption=caption, header=["after \\ task", *tasks], rows=rows, css="scores")


def task_table(groups: Mapping[str, MethodRuns]) -> Table:
    """One row per task, two columns per method: the score right after training it and after the last task.

    ``S[j, j]`` and ``S[T, j]``: the summary of the score matrices of a long stream (``O(T)`` cells per method).
    """
    tasks = next(iter(groups.values())).tasks
    t = len(tasks)
    n = max(g.n for g in groups.values())
    rows: list[tuple[str, list[Cell]]] = []
    for j, task in enumerate(tasks):
        cells = []
        for g in groups.values():
            for i in (j + 1, t):
                st = g.cell_stat(i, j)
                cells.append(Cell(fmt_stat("score", st.mean, st.half_width), title=_title(st, "score", g.seeds),
                                  css="diag" if i == j + 1 else ""))
        rows.append((task, cells))
    caption = "Score of each task right after its training and after the last task"
    if n > 1:
        caption += f" (mean ± 95% CI over {n} seeds)"
    return Table(caption=caption, header=["task", *["after training", "after the last task"] * len(groups)],
                 rows=rows, groups=[(m, 2) for m in groups], css="scores")
