"""The "General knowledge" section: drift from the base model on the built-in general probe (on the base model
and after the last task, or after every task with ``--measure-every-task``)."""

from __future__ import annotations

from typing import Any

from ..aggregate import ReportRuns
from ..document import Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_stat
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 44


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    from ..figures import stability_figure

    groups = {m: g for m, g in runs.groups.items() if g.retention_stats("kl") is not None}
    if not groups:
        return None
    first = next(iter(groups.values()))
    stages = ["base", *first.tasks]
    record = first.results[0].retention or {}
    panels = []
    rows = []
    for key, title, ylabel in (("kl", "KL drift from the base model", "mean KL (nats per token)"),
                               ("kept", "Base model's right answers still right", "share kept")):
        series = {}
        for method, g in groups.items():
            stats = g.retention_stats(key)
            series[method] = {i + 1: s.mean for i, s in enumerate(stats) if s is not None}
            rows.append((f"{method}: {'KL' if key == 'kl' else 'kept'}",
                         [Cell(fmt_stat("score", s.mean, s.half_width) if s is not None else "not probed")
                          for s in stats]))
        panels.append((title, "after stage", ylabel, series, stages))
    caption = ("Left: mean KL(base ‖ model) of the next-token distributions over the probe's reference "
               "continuations (0 = unchanged). Right: of the probe items the base model answers right, the share "
               "still answered right; the first point is the base model itself. The probe runs on the base model "
               "and after the last task (after every task with --measure-every-task).")
    table = Table(caption="General probe after each stage" + (" (mean ± 95% CI over seeds)" if first.n > 1 else ""),
                  header=["Method", *[f"after {s}" if s != "base" else "base" for s in stages]], rows=rows,
                  css="curves")
    blocks: list[Any] = [
        Paragraph(f"The built-in general probe ({record.get('items', '?')} short prompts: facts, arithmetic, common "
                  f"phrases, instructions) measures what training costs the model outside the stream. The base "
                  f"model answers {record.get('base_right', '?')} of them right."),
        writer.figure(stability_figure(panels), "general_probe", "General knowledge", caption),
        TableBlock(table),
    ]
    explanation = Explanation("General knowledge (the probe)", [
        ("KL drift", "(1/N) Σ_positions Σ_v p_base(v) · (log p_base(v) − log p_model(v))",
         "over the N positions that predict a token of the probes' reference answers (prompt, a space, the "
         "reference, EOS), both models teacher-forced on the same text; 0 for the base model. Lower is better."),
        ("kept", "|right now ∩ right for the base| / |right for the base|",
         "greedy answers (8 tokens) judged right when the first line starts with an accepted answer "
         "(case-insensitive) followed by a non-alphanumeric character. Higher is better."),
    ])
    return Section("General knowledge", "general-knowledge", blocks, explanation)
