"""Build the forgetting-analysis report of one run (several seeds) or a comparison of runs."""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError

from . import explain
from .aggregate import MethodRuns, check_same_setup, group_seeds, mean_nested
from .document import (
    Bullets,
    Document,
    FigureBlock,
    Formulas,
    KeyValues,
    Notice,
    Paragraph,
    Section,
    TableBlock,
)
from .figures import RenderedFigure, save_figure
from .formatting import fmt_score, fmt_stat
from .loading import RunData, load_runs
from .tables import CL_COLUMNS, COST_COLUMNS, Cell, Table, comparison_table, score_table

logger = logging.getLogger(__name__)

__all__ = ["ReportFiles", "build_report", "compare_runs"]


@dataclass(frozen=True)
class ReportFiles:
    """Every file a report wrote.

    Attributes:
        html: the self-contained page.
        markdown: the Markdown summary (same folder, same stem, ``.md``).
        png: the figures as PNG, in page order.
        svg: the same figures as SVG.
        figures: the figure names (file stems), in page order.
    """

    html: Path
    markdown: Path
    png: tuple[Path, ...]
    svg: tuple[Path, ...]
    figures: tuple[str, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        """All written paths."""
        return (self.html, self.markdown, *self.png, *self.svg)


def _resolve_out(out: str | Path | None, default: Path) -> Path:
    if out is None:
        return default
    out = Path(out)
    if out.is_dir():
        return out / default.name
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: the report is an HTML file; give a path ending in .html (or a folder)")
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _version() -> str:
    try:
        from losia_cl import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "?"


class _Writer:
    """Collects the figures of one report into ``out_dir``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.figures: list[RenderedFigure] = []

    def figure(self, fig: Any, name: str, title: str, caption: str) -> FigureBlock:
        if any(f.name == name for f in self.figures):
            raise AssertionError(f"figure name {name!r} used twice")
        rendered = save_figure(fig, self.out_dir, name, title, caption)
        self.figures.append(rendered)
        return FigureBlock(rendered)


# ---- sections of a report


def _run_section(runs: Sequence[RunData], groups: dict[str, MethodRuns]) -> Section:
    first = runs[0]
    tm = first.task_metrics
    items = [
        ("stream", first.stream),
        ("model", first.model),
        ("tasks", ", ".join(f"{t} ({tm[t]})" if t in tm else t for t in first.tasks)),
        ("methods", ", ".join(groups)),
        ("seeds", ", ".join(str(r.seed) for r in runs)),
        ("run directories", ", ".join(str(r.path) for r in runs)),
    ]
    for run in runs:
        tag = f" (seed {run.seed})" if len(runs) > 1 else ""
        started = run.info.get("started_at") or "?"
        finished = run.info.get("finished_at") or "not finished"
        items.append((f"started / finished{tag}", f"{started} / {finished}"))
    commits = sorted({str(r.info.get("git_commit")) for r in runs if r.info.get("git_commit")})
    if commits:
        items.append(("git commit", ", ".join(commits)))
    versions = first.info.get("versions") or {}
    if versions:
        items.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    for method, g in groups.items():
        options = g.results[0].options
        if options:
            items.append((f"{method} options", json.dumps(options, sort_keys=True, default=str)))
    command = first.info.get("command")
    if command:
        items.append(("command", shlex.join(command)))
    blocks: list[Any] = [KeyValues(items)]
    for run in runs:
        if run.missing:
            where = f"{run.path} (seed {run.seed})" if len(runs) > 1 else str(run.path)
            blocks.append(Notice(
                f"Partial run: method(s) {', '.join(run.missing)} of {where} have no results.json "
                "(unfinished); the report shows the finished methods only."
            ))
        elif not run.finished:
            blocks.append(Notice(f"{run.path}: run.json has no finished_at; the run may still be going.", "info"))
    counts = {m: g.n for m, g in groups.items()}
    if len(runs) > 1 and len(set(counts.values())) > 1:
        blocks.append(Notice("Methods were finished by different numbers of seeds: "
                             + ", ".join(f"{m}: {n} of {len(runs)}" for m, n in counts.items())))
    return Section("Run", "run", blocks)


def _comparison_section(groups: dict[str, MethodRuns]) -> Section:
    table = comparison_table([("", groups)], caption="Continual-learning metrics and costs per method")
    text = ("AP, BWT, FWT, forgetting and LA are computed from each method's score matrix (see How to read this); "
            "trainable parameters, train time and peak memory come from the trainer's results.json.")
    return Section("Comparison", "comparison", [Paragraph(text), TableBlock(table)])


def _score_section(groups: dict[str, MethodRuns], writer: _Writer) -> Section:
    from .figures import score_matrix_figure

    blocks: list[Any] = [Paragraph(
        "One heatmap per method. Rows: the base model, then the model after each training stage; columns: the "
        "evaluated tasks. Cells print the score on a 0-1 scale with 3 decimals; the outlined diagonal is each "
        "task right after it was trained. Below the diagonal: retention of earlier tasks; above it: zero-shot "
        "transfer to tasks not trained yet."
    )]
    for method, g in groups.items():
        fig = score_matrix_figure(method, g.tasks, g.mean_scores(), g.n)
        caption = "Score after each stage (rows) on each task (columns)"
        caption += f", mean over {g.n} seeds; the table gives the 95% confidence intervals." if g.n > 1 else "."
        blocks.append(writer.figure(fig, f"score_matrix_{_slug(method)}", f"Score matrix: {method}", caption))
        blocks.append(TableBlock(score_table(g)))
    return Section("Score matrices", "scores", blocks)


def _curve_table(groups: dict[str, MethodRuns], key: str, caption: str) -> Table:
    tasks = next(iter(groups.values())).tasks
    rows = []
    for method, g in groups.items():
        rows.append((method, [Cell(fmt_stat("score", s.mean, s.half_width)) for s in g.curve_stats(key)]))
    return Table(caption=caption, header=["Method", *[f"after {t}" for t in tasks]], rows=rows, css="curves")


def _forgetting_section(groups: dict[str, MethodRuns], writer: _Writer) -> Section:
    from .figures import forgetting_curves_figure

    tasks = next(iter(groups.values())).tasks
    curves = {}
    for method, g in groups.items():
        cells = g.score_stats()
        curves[method] = [[(cells[i][j].mean, cells[i][j].half_width) for i in range(len(tasks) + 1)]
                          for j in range(len(tasks))]
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


def _mean_pairs(matrix: list[list[float | None]]) -> float | None:
    vals = [matrix[a][b] for a in range(len(matrix)) for b in range(a + 1, len(matrix)) if matrix[a][b] is not None]
    return math.fsum(vals) / len(vals) if vals else None


def _overlap_chance_cumulative(summary: dict[str, Any]) -> list[float | None]:
    from .figures import chance_cumulative_coverage

    per_matrix = summary.get("per_matrix")
    n = len(summary["tasks"])
    if isinstance(per_matrix, dict) and per_matrix and all(
        isinstance(m, dict) and isinstance(m.get("coverage"), list) and len(m["coverage"]) == n
        for m in per_matrix.values()
    ):
        return chance_cumulative_coverage([m["coverage"] for m in per_matrix.values()])
    return chance_cumulative_coverage([summary.get("task_coverage") or [None] * len(summary["tasks"])])


def _layer_profile(summary: dict[str, Any]) -> dict[int, tuple[float | None, float | None, float | None]]:
    per_layer = summary.get("per_layer") or {}
    chance: dict[int, list[float]] = {}
    for stats in (summary.get("per_matrix") or {}).values():
        if not isinstance(stats, dict) or not isinstance(stats.get("layer"), int):
            continue
        value = _mean_pairs(stats.get("coverage_jaccard_chance") or [])
        if value is not None:
            chance.setdefault(int(stats["layer"]), []).append(value)
    out = {}
    for layer, entry in per_layer.items():
        c = chance.get(int(layer))
        out[int(layer)] = (entry.get("mean_jaccard"), math.fsum(c) / len(c) if c else None, entry.get("mean_ratio"))
    return out


def _overlap_section(groups: dict[str, MethodRuns], writer: _Writer) -> Section | None:
    from .figures import overlap_coverage_figure, overlap_jaccard_figure, overlap_layers_figure

    with_overlap = {m: g.overlaps() for m, g in groups.items() if g.overlaps()}
    if not with_overlap:
        return None
    tasks_of = {m: list(s[0]["tasks"]) for m, s in with_overlap.items()}
    tasks = next(iter(tasks_of.values()))
    for m, t in tasks_of.items():
        for s in with_overlap[m]:
            if list(s["tasks"]) != t:
                raise DataError(f"{m}: subnet_overlap.tasks differ between seeds ({t} vs {s['tasks']})")
    jaccard, ratio, coverage, profiles = {}, {}, {}, {}
    rows: list[tuple[str, list[Cell]]] = []
    for m, summaries in with_overlap.items():
        jaccard[m] = mean_nested([s["coverage_jaccard"] for s in summaries])
        ratios = [s.get("coverage_jaccard_ratio") for s in summaries]
        ratio[m] = mean_nested(ratios) if all(r is not None for r in ratios) else None
        chances = [s.get("coverage_jaccard_chance") for s in summaries]
        chance = mean_nested(chances) if all(c is not None for c in chances) else None
        cum = mean_nested([s.get("cumulative_coverage") or [None] * len(s["tasks"]) for s in summaries])
        cum_chance = mean_nested([_overlap_chance_cumulative(s) for s in summaries])
        coverage[m] = (cum, cum_chance)
        layer_sets = [_layer_profile(s) for s in summaries]
        layers = sorted(set().union(*layer_sets))
        if layers and any(v is not None for ls in layer_sets for entry in ls.values() for v in entry):
            profiles[m] = {
                k: tuple(mean_nested([[ls[k][i] if k in ls else None] for ls in layer_sets])[0] for i in range(3))
                for k in layers
            }
        rows.append((m, [
            Cell(fmt_score(_mean_pairs(jaccard[m]))),
            Cell(fmt_score(None if chance is None else _mean_pairs(chance))),
            Cell("—" if ratio[m] is None or _mean_pairs(ratio[m]) is None else f"{_mean_pairs(ratio[m]):.2f}"),
            Cell(fmt_score(cum[-1] if cum else None)),
            Cell(fmt_score(cum_chance[-1] if cum_chance else None)),
        ]))
    n_seeds = max(len(s) for s in with_overlap.values())
    seeds_note = f" Values are means over {n_seeds} seeds." if n_seeds > 1 else ""
    others = [m for m in groups if m not in with_overlap]
    blocks: list[Any] = [Paragraph(
        "Which weights did each task train? For LoSiA-family methods every target matrix trains a sub-matrix "
        "W[R, C] that is re-localized during training; a task's coverage is the union of its sub-matrices."
        + (f" Methods without a subnet ({', '.join(others)}) have no overlap data." if others else "")
        + seeds_note
    )]
    blocks.append(TableBlock(Table(
        caption="Subnet overlap summary (means over task pairs a < b and over matrices)",
        header=["Method", "coverage Jaccard", "chance Jaccard", "ratio to chance", "final cumulative coverage",
                "chance cumulative coverage"],
        rows=rows, css="overlap")))
    if len(tasks) < 2:
        blocks.append(Paragraph("With a single task there is no pair of tasks to compare: only the coverage is shown."))
    else:
        blocks.append(writer.figure(
            overlap_jaccard_figure(tasks, {m: (jaccard[m], ratio[m]) for m in with_overlap}),
            "overlap_jaccard", "Subnet overlap between tasks",
            "Coverage Jaccard J(a, b) of the weights trained by tasks a and b, averaged over the target matrices "
            "(diagonal = 1); below each value, ×r is the ratio to the random-chance Jaccard." + seeds_note))
    if profiles and len(tasks) >= 2:
        blocks.append(writer.figure(
            overlap_layers_figure(profiles), "overlap_layers", "Per-layer overlap profile",
            "Left: mean coverage Jaccard over task pairs per layer (solid) and its random-chance level (dashed). "
            "Right: ratio to chance (1 = chance)." + seeds_note))
    blocks.append(writer.figure(
        overlap_coverage_figure(tasks, coverage), "overlap_coverage", "Cumulative coverage",
        "Fraction of each matrix's entries trained by tasks 1..t (solid, mean over matrices) against the level "
        "expected if each task's subnet were placed at random (dashed)." + seeds_note))
    return Section("Subnet overlap", "overlap", blocks)


def _howto_section(has_overlap: bool, has_stability: bool) -> Section:
    from .stability import stability_formulas

    blocks: list[Any] = [Paragraph(explain.INTRO), Formulas(explain.SCORE_FORMULAS + explain.STAT_FORMULAS)]
    if has_overlap:
        blocks.append(Paragraph("Subnet overlap (LoSiA-family methods):"))
        blocks.append(Formulas(explain.OVERLAP_FORMULAS))
    if has_stability:
        blocks.append(Paragraph("Weight stability:"))
        blocks.append(Formulas(stability_formulas()))
    return Section("How to read this", "how-to-read", blocks)


def _write(doc: Document, out: Path, writer: _Writer) -> ReportFiles:
    from .html import render_html
    from .markdown import render_markdown

    md = out.with_suffix(".md")
    out.write_text(render_html(doc), encoding="utf-8")
    md.write_text(render_markdown(doc), encoding="utf-8")
    files = ReportFiles(
        html=out,
        markdown=md,
        png=tuple(f.png for f in writer.figures),
        svg=tuple(f.svg for f in writer.figures),
        figures=tuple(f.name for f in writer.figures),
    )
    logger.info("report written to %s (%d figures)", out, len(writer.figures))
    return files


def build_report(run_dirs: Sequence[str | Path] | str | Path, out: str | Path | None = None) -> ReportFiles:
    """Write the forgetting-analysis report of one run, or of several seeds of the same run setup.

    ``run_dirs``: output folders of ``losia-cl run`` (same stream, tasks and
    model; each method is aggregated over the seeds that finished it, as mean ±
    95 % CI).  ``out``: the HTML file (default ``<first run dir>/report/report.html``;
    an existing folder gets ``report.html`` inside).  The Markdown summary goes
    beside it with the suffix ``.md``, the figures as ``<name>.png`` and
    ``<name>.svg`` into the same folder; nothing is written elsewhere.

    Raises :class:`~losia_cl.errors.DataError` for a missing or malformed run
    directory (naming the file and key) before anything is written.
    """
    from .stability import stability_section

    runs = load_runs(run_dirs)  # type: ignore[arg-type]
    check_same_setup(runs)
    out = _resolve_out(out, runs[0].path / "report" / "report.html")
    groups = group_seeds(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out.parent)
    sections = [_run_section(runs, groups), _comparison_section(groups), _score_section(groups, writer),
                _forgetting_section(groups, writer)]
    overlap = _overlap_section(groups, writer)
    if overlap is not None:
        sections.append(overlap)
    stability = stability_section(groups, writer)
    if stability is not None:
        sections.append(stability)
    sections.append(_howto_section(overlap is not None, stability is not None))
    first = runs[0]
    seeds = f"{len(runs)} seeds" if len(runs) > 1 else f"seed {first.seed}"
    doc = Document(
        title=f"Forgetting analysis: {first.stream}",
        subtitle=f"{first.model} · {len(first.tasks)} tasks · {len(groups)} methods · {seeds}",
        sections=sections,
        footer=f"Generated by losia-cl {_version()} from {', '.join(str(r.path) for r in runs)}.",
    )
    return _write(doc, out, writer)


# ---- compare


def _run_labels(runs: Sequence[RunData]) -> list[str]:
    labels = [r.path.resolve().name or str(r.path) for r in runs]
    out = []
    for i, label in enumerate(labels):
        out.append(label if labels.count(label) == 1 else f"{label} #{i + 1}")
    return out


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> ReportFiles:
    """Put several runs side by side: one column group per run in the tables, one bar per run in the figures.

    ``out`` defaults to ``<first run dir>/report/compare.html``; the Markdown
    summary and the figures go beside it as for :func:`build_report`.
    """
    from .figures import compare_curves_figure, compare_metrics_figure

    runs = load_runs(run_dirs)
    if len(runs) < 2:
        raise DataError("compare needs at least two run directories (use `losia-cl report` for one run)")
    out = _resolve_out(out, runs[0].path / "report" / "compare.html")
    labels = _run_labels(runs)
    per_run = [(label, group_seeds([run])) for label, run in zip(labels, runs)]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out.parent)

    overview = KeyValues([(label, f"{run.path} — stream {run.stream}, model {run.model}, {len(run.tasks)} tasks, "
                                  f"seed {run.seed}") for label, run in zip(labels, runs)])
    blocks: list[Any] = [overview]
    for label, run in zip(labels, runs):
        if run.missing:
            blocks.append(Notice(f"Partial run {label}: method(s) {', '.join(run.missing)} have no results.json "
                                 "(unfinished) and are left out."))
    cl_table = comparison_table(per_run, CL_COLUMNS, caption="Continual-learning metrics, one column group per run")
    cost_table = comparison_table(per_run, COST_COLUMNS, caption="Costs, one column group per run")
    blocks += [TableBlock(cl_table), TableBlock(cost_table)]
    methods: list[str] = []
    for _, groups in per_run:
        methods.extend(m for m in groups if m not in methods)
    metric_values = []
    for column in CL_COLUMNS:
        values = {(label, m): g.stat(column.key).mean for label, groups in per_run for m, g in groups.items()}
        metric_values.append((column.label, values))
    blocks.append(writer.figure(
        compare_metrics_figure(labels, methods, metric_values), "compare_metrics", "Metrics per run",
        "One panel per metric (higher is better except forgetting), methods on the x axis, one bar per run."))
    curves = [(label, {m: [s.mean for s in g.curve_stats("average_performance_curve")] for m, g in groups.items()})
              for label, groups in per_run]
    blocks.append(writer.figure(
        compare_curves_figure(curves), "compare_ap_curves", "Average performance after each stage",
        "One panel per run: AP_i, the mean score over the tasks seen so far, after each stage i."))
    sections = [Section("Runs compared", "runs", blocks)]
    for label, (run, (_, groups)) in zip(labels, zip(runs, per_run)):
        sblocks: list[Any] = [Bullets([f"tasks: {', '.join(run.tasks)}", f"methods: {', '.join(groups)}"])]
        sblocks.extend(TableBlock(score_table(g)) for g in groups.values())
        sections.append(Section(f"Score matrices: {label}", f"run-{_slug(label)}", sblocks))
    sections.append(_howto_section(False, False))
    doc = Document(
        title="Comparison of runs",
        subtitle=" · ".join(labels),
        sections=sections,
        footer=f"Generated by losia-cl {_version()} from {', '.join(str(r.path) for r in runs)}.",
    )
    return _write(doc, out, writer)
