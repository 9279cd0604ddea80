"""The "Run" section: what was run (stream, model, tasks, methods, seeds, times, versions, command)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..aggregate import ReportRuns
from ..document import KeyValues, Notice, Section
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
