"""The "Learning rates" section: each method's learning rate and where it came from (default, --lr, tune.json)."""

from __future__ import annotations

from ..aggregate import ReportRuns
from ..document import Notice, Paragraph, Section, TableBlock
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 15


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    recorded = [r.info.get("learning_rates") for r in runs.runs]
    if not any(recorded):
        return None
    rows = []
    sources = set()
    for method in runs.groups:
        seen = {(e["lr"], e["source"], e.get("file")) for rec in recorded if rec and method in rec
                for e in [rec[method]]}
        text = "; ".join(f"{lr:g}" for lr, _, _ in sorted(seen)) or "not recorded"
        origin = "; ".join(sorted({src + (f" ({file})" if file else "") for _, src, file in seen})) or "—"
        sources.update(src for _, src, _ in seen)
        rows.append((method, [Cell(text), Cell(origin)]))
    table = Table(caption="Learning rate of each method and its source", header=["Method", "learning rate", "source"],
                  rows=rows, css="learning-rates")
    blocks = [Paragraph("default: the method's built-in default (docs/fair-comparison.md gives where the defaults "
                        "come from); --lr: given on the command line; tune.json: chosen by `losia-cl tune` on the "
                        "eval splits (highest final AP, ties to the lower rate)."), TableBlock(table)]
    if sources - {"tune.json"}:
        blocks.append(Notice("Not every learning rate was chosen by `losia-cl tune`: differences between methods "
                             "may come from their learning rates as much as from the methods.", "info"))
    return Section("Learning rates", "learning-rates", blocks)
