"""The "LoSiA schedule" section: which LoSiA ran in each task, and whether every layer re-localized.

It reads ``method_record`` of results.json (written by the LoSiA family's ``describe``): the slot length T,
sync or async slots, how the first subnets were chosen, the moment and step-counter handling at a
re-localization, what happened to non-target parameters, which gradient norm was clipped, and the
re-localizations per layer.  A task in which some layer never re-localized trained that layer's initial
subnet throughout; the section flags it.
"""

from __future__ import annotations

from typing import Any

from ..aggregate import ReportRuns
from ..document import Notice, Paragraph, Section, TableBlock
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 17


def _text(value: Any) -> str:
    return "—" if value is None else str(value)


def _never(record: dict[str, Any]) -> list[Any]:
    """The layers that never re-localized in the task (an empty list where the record has none)."""
    never = record.get("never_relocalized")
    return never if isinstance(never, list) else []


def _row(record: dict[str, Any]) -> list[Cell]:
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    schedule = record.get("schedule") if isinstance(record.get("schedule"), dict) else {}
    counts = record.get("relocalizations_per_layer")
    counts = [n for n in counts.values() if isinstance(n, (int, float))] if isinstance(counts, dict) else []
    never = _never(record)
    steps = "kept" if config.get("keep_step_count") else "reset"
    return [
        Cell(_text(record.get("steps"))),
        Cell(f"T={_text(schedule.get('period'))}, {_text(schedule.get('mode'))}, {_text(schedule.get('slots'))} slots"),
        Cell(_text(schedule.get("init"))),
        Cell(f"{min(counts)}–{max(counts)}" if counts else "—"),
        Cell(str(len(never)) if counts else "—"),
        Cell(f"moments reset, step counter {steps}"),
        Cell(_text(config.get("dense_params"))),
        Cell(_text(record.get("clipping"))),
    ]


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    rows = []
    flagged = []
    for method, group in runs.groups.items():
        for result, seed in zip(group.results, group.seeds):
            for task in result.tasks:
                record = result.method_record.get(task)
                if not isinstance(record, dict) or "relocalizations_per_layer" not in record:
                    continue
                label = method if seed is None or group.n == 1 else f"{method} (seed {seed})"
                rows.append((f"{label} · {task}", _row(record)))
                if never := _never(record):
                    flagged.append(f"{label} on {task}: {len(never)} layer(s)")
    if not rows:
        return None
    table = Table(caption="The LoSiA that ran in each task",
                  header=["Method · task", "steps", "schedule", "first subnets", "re-localizations per layer",
                          "layers never re-localized", "at a re-localization", "non-target parameters",
                          "clipped norm"],
                  rows=rows, css="losia-schedule")
    blocks: list = [
        Paragraph("T is the slot length: a layer records importance for T steps, then re-localizes its subnet. "
                  "'re-localizations per layer' is the range over the layers of the task's re-localizations; "
                  "docs/fidelity.md lists where these settings depart from the official LoSiA code."),
        TableBlock(table),
    ]
    if flagged:
        blocks.append(Notice("Some layers never re-localized and trained their initial subnet throughout: "
                             + "; ".join(flagged) + ". A longer task or a shorter min_period gives every layer "
                             "a slot.", "warning"))
    return Section("LoSiA schedule", "losia-schedule", blocks)
