"""The "Run" section: what was run (stream, model, tasks, methods, seeds, times, versions, command)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from losia_cl.timing import RUN_TIME_PARTS, TIME_PARTS

from ..aggregate import ReportRuns
from ..document import KeyValues, Notice, Paragraph, Section, TableBlock
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 10


def section(runs: ReportRuns, writer: FigureWriter) -> Section:
    """Always present; flags partial and unfinished runs and methods finished by different numbers of seeds."""
    first, groups = runs.first, runs.groups
    tm = first.task_metrics
    items = [
        ("stream", first.stream),
        ("model", first.model),
        ("tasks", ", ".join(f"{t} ({tm[t]})" if t in tm else t for t in first.tasks)),
        ("methods", ", ".join(groups)),
        ("seeds", ", ".join(str(r.seed) for r in runs.runs)),
        ("run directories", ", ".join(str(r.path) for r in runs.runs)),
    ]
    several = len(runs.runs) > 1
    for run in runs.runs:
        tag = f" (seed {run.seed})" if several else ""
        started = run.info.get("started_at") or "?"
        finished = run.info.get("finished_at") or "not finished"
        items.append((f"started / finished{tag}", f"{started} / {finished}"))
    commits = sorted({str(r.info.get("git_commit")) for r in runs.runs if r.info.get("git_commit")})
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
    times = _time_table(runs)
    if times is not None:
        blocks.append(TableBlock(times))
        blocks.append(Paragraph(
            "Columns: " + "; ".join(f"{part}: {what}" for part, what in TIME_PARTS.items()) + ". The first row, when "
            "present, is the base model's share, done once for all methods: "
            + "; ".join(f"{what} (in {_RUN_PART_COLUMN[part]})" for part, what in RUN_TIME_PARTS.items()) + "."))
    for run in runs.runs:
        if run.missing:
            where = f"{run.path} (seed {run.seed})" if several else str(run.path)
            blocks.append(Notice(
                f"Partial run: method(s) {', '.join(run.missing)} of {where} have no results.json "
                "(unfinished); the report shows the finished methods only."
            ))
        elif not run.finished:
            blocks.append(Notice(f"{run.path}: run.json has no finished_at; the run may still be going.", "info"))
    counts = {m: g.n for m, g in groups.items()}
    if several and len(set(counts.values())) > 1:
        blocks.append(Notice("Methods were finished by different numbers of seeds: "
                             + ", ".join(f"{m}: {n} of {len(runs.runs)}" for m, n in counts.items())))
    return Section("Run", "run", blocks)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


#: the column of the report's time table that each part done once per run falls in
_RUN_PART_COLUMN = {"load": "load", "base_evaluation": "evaluation", "probe_reference": "probe",
                    "stability_reference": "metrics"}


def _time_table(runs: ReportRuns) -> Table | None:
    """Seconds per part of every method's run (mean over seeds), and the base model's share, done once per run."""
    groups = {m: g for m, g in runs.groups.items() if any(r.timings for r in g.results)}
    if not groups:
        return None
    parts = list(TIME_PARTS)
    rows = []
    shared = [r.info.get("timings") or {} for r in runs.runs]
    if any(shared):
        column = {_RUN_PART_COLUMN[p]: _mean([t[p] for t in shared if p in t]) for p in RUN_TIME_PARTS}
        values = [column.get(part) for part in parts]
        rows.append(("base model (once per run)", [*[Cell("" if v is None else f"{v:.0f}") for v in values],
                                                   Cell(f"{sum(v for v in values if v is not None):.0f}")]))
    for method, g in groups.items():
        timed = [r.timings for r in g.results if r.timings]
        means = [_mean([t.get(part, 0.0) for t in timed]) or 0.0 for part in parts]
        rows.append((method, [*[Cell(f"{v:.0f}") for v in means], Cell(f"{sum(means):.0f}")]))
    several = len(runs.runs) > 1
    return Table(caption="Where the time went, in seconds" + (" (mean over seeds)" if several else ""),
                 header=["", *parts, "total"], rows=rows, css="curves")
