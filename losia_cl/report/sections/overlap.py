"""The "Subnet overlap" section (LoSiA-family methods): which weights each task trained, against chance.

Reads :meth:`losia_cl.metrics.SubnetOverlapTracker.summary` dicts (``results.json["subnet_overlap"]``).
"""

from __future__ import annotations

import math
from typing import Any

from losia_cl.errors import DataError, brief

from ..aggregate import ReportRuns, mean_nested
from ..document import Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_score
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 50

OVERLAP_FORMULAS = [
    ("coverage of a task", "Cov_a = ∪_k R_k × C_k",
     "all entries W[r, c] of a matrix trained in some sub-matrix R_k × C_k during task a (LoSiA re-localizes "
     "several times per task)."),
    ("coverage Jaccard", "J(a, b) = |Cov_a ∩ Cov_b| / |Cov_a ∪ Cov_b|",
     "how much two tasks trained the same weights; averaged over the matrices (heatmap)."),
    ("chance level", "E|∩| = |Cov_a|·|Cov_b| / (d_out·d_in);  J_chance = E|∩| / (|Cov_a| + |Cov_b| − E|∩|)",
     "the Jaccard expected if one task's rows and columns were relabelled at random (same block sizes)."),
    ("ratio to chance", "J(a, b) / J_chance(a, b)",
     "printed as ×r under each heatmap cell; above 1 means the tasks reuse the same subnet more than chance."),
    ("per-layer profile", "mean over task pairs a < b and over the layer's matrices",
     "mean coverage Jaccard per layer (solid), its chance level (dashed), and the ratio to chance."),
    ("cumulative coverage", "Cum_t = |∪_{a ≤ t} Cov_a| / (d_out·d_in)",
     "fraction of a matrix's entries trained by tasks 1..t, averaged over the matrices."),
    ("chance cumulative coverage", "1 − Π_{a ≤ t} (1 − |Cov_a| / (d_out·d_in))",
     "the same if each task's subnet were placed at random, independently (dashed)."),
]


def _mean_pairs(matrix: list[list[float | None]]) -> float | None:
    vals = [matrix[a][b] for a in range(len(matrix)) for b in range(a + 1, len(matrix)) if matrix[a][b] is not None]
    return math.fsum(vals) / len(vals) if vals else None


def _overlap_chance_cumulative(summary: dict[str, Any]) -> list[float | None]:
    from ..figures import chance_cumulative_coverage

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


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    """The section, or ``None`` when no method has ``subnet_overlap``."""
    from ..figures import overlap_coverage_figure, overlap_jaccard_figure, overlap_layers_figure

    groups = runs.groups
    with_overlap = {m: g.overlaps() for m, g in groups.items() if g.overlaps()}
    if not with_overlap:
        return None
    tasks_of = {m: list(s[0]["tasks"]) for m, s in with_overlap.items()}
    tasks = next(iter(tasks_of.values()))
    for m, t in tasks_of.items():
        for s in with_overlap[m]:
            if list(s["tasks"]) != t:
                raise DataError(f"{m}: subnet_overlap.tasks differ between seeds ({brief(t)} vs {brief(s['tasks'])})")
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
            overlap_jaccard_figure(tasks, {m: (jaccard[m], ratio[m]) for m in with_overlap},
                                   annotate=not runs.summary_view),
            "overlap_jaccard", "Subnet overlap between tasks",
            "Coverage Jaccard J(a, b) of the weights trained by tasks a and b, averaged over the target matrices "
            + ("(diagonal = 1); colour only: the table gives the means over task pairs."
               if runs.summary_view else
               "(diagonal = 1); below each value, ×r is the ratio to the random-chance Jaccard.") + seeds_note))
    if profiles and len(tasks) >= 2:
        blocks.append(writer.figure(
            overlap_layers_figure(profiles), "overlap_layers", "Per-layer overlap profile",
            "Left: mean coverage Jaccard over task pairs per layer (solid) and its random-chance level (dashed). "
            "Right: ratio to chance (1 = chance)." + seeds_note))
    blocks.append(writer.figure(
        overlap_coverage_figure(tasks, coverage), "overlap_coverage", "Cumulative coverage",
        "Fraction of each matrix's entries trained by tasks 1..t (solid, mean over matrices) against the level "
        "expected if each task's subnet were placed at random (dashed)." + seeds_note))
    return Section("Subnet overlap", "overlap", blocks,
                   Explanation("Subnet overlap (LoSiA-family methods):", OVERLAP_FORMULAS))
