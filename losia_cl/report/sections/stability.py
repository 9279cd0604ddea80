"""The weight-stability section: principal-subspace similarity and ΔW effective rank, per layer and per stage.

Reads :meth:`losia_cl.metrics.StabilityTracker.summary` dicts (``results.json["stability"]``)::

    {"config": {"k": ...}, "num_matrices": int,
     "base": {"mean": {"effective_rank", "stable_rank"}},
     "stages": [{"stage": str, "mean": {measure: value}, "per_layer": {"<layer>": {measure: value}}, ...}]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..aggregate import ReportRuns, mean_nested
from ..document import Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_score
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 60

_TABLE_KEYS = (
    ("subspace_left_base", "subspace sim. left", 3),
    ("subspace_right_base", "subspace sim. right", 3),
    ("spectral_drift_base", "spectral drift", 4),
    ("effective_rank", "erank W", 1),
    ("delta_effective_rank", "erank ΔW", 2),
    ("delta_stable_rank", "stable rank ΔW", 2),
    ("delta_rel_norm", "‖ΔW‖/‖W₀‖", 4),
)

STABILITY_FORMULAS = [
    ("principal-subspace similarity", "s_L = ‖U₀ᵀ U_t‖²_F / k,  s_R = ‖V₀ᵀ V_t‖²_F / k,  s = (s_L + s_R) / 2",
     "mean squared cosine of the k principal angles between the top-k left (U) or right (V) singular "
     "subspaces of the weights after stage t and of the base weights; 1 = unchanged, about k/d for a "
     "random subspace."),
    ("spectral drift", "‖σ(W_t) − σ(W₀)‖₂ / ‖σ(W₀)‖₂",
     "relative change of the singular values."),
    ("effective rank", "erank(M) = exp(−Σ_i p_i log p_i),  p_i = σ_i / Σ_j σ_j",
     "Roy & Vetterli 2007; of the weights W_t and of the update ΔW = W_t − W₀ (for LoRA the merged "
     "weights). A low ΔW effective rank means the update lies in few directions."),
    ("stable rank", "‖M‖²_F / σ_1(M)²", "a smooth lower bound of the rank."),
    ("relative update", "‖ΔW‖_F / ‖W₀‖_F", "size of the update against the base weights."),
    ("averaging", "mean over the matrices of a layer (per-layer plots) or of the model (tables, stage plots)",
     "values are measured after the last stage unless the x axis is the stage."),
]


def _similarity(row: Mapping[str, Any]) -> float | None:
    vals = [row.get("subspace_left_base"), row.get("subspace_right_base")]
    vals = [float(v) for v in vals if v is not None]
    return math.fsum(vals) / len(vals) if vals else None


def _mean_dicts(dicts: list[dict[Any, float | None]]) -> dict[Any, float | None]:
    keys = sorted(set().union(*dicts)) if dicts else []
    return {k: mean_nested([d.get(k) for d in dicts]) for k in keys}


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    """The section, or ``None`` when no method has stability data with at least one stage."""
    from ..figures import stability_figure

    groups = runs.groups
    data = {m: [s for s in g.stabilities() if s.get("stages")] for m, g in groups.items()}
    data = {m: s for m, s in data.items() if s}
    if not data:
        return None
    sim_layer: dict[str, dict[int, float | None]] = {}
    rank_layer: dict[str, dict[int, float | None]] = {}
    sim_stage: dict[str, dict[int, float | None]] = {}
    rank_stage: dict[str, dict[int, float | None]] = {}
    stage_names: list[str] | None = None
    same_stages = True
    rows = []
    for m, summaries in data.items():
        finals = [s["stages"][-1] for s in summaries]
        sim_layer[m] = _mean_dicts([{int(k): _similarity(r) for k, r in f.get("per_layer", {}).items()} for f in finals])
        rank_layer[m] = _mean_dicts(
            [{int(k): r.get("delta_effective_rank") for k, r in f.get("per_layer", {}).items()} for f in finals])
        sim_stage[m] = _mean_dicts(
            [{i + 1: _similarity(st["mean"]) for i, st in enumerate(s["stages"])} for s in summaries])
        rank_stage[m] = _mean_dicts(
            [{i + 1: st["mean"].get("delta_effective_rank") for i, st in enumerate(s["stages"])} for s in summaries])
        names = [st["stage"] for st in summaries[0]["stages"]]
        if stage_names is None:
            stage_names = names
        elif names != stage_names:
            same_stages = False
        cells = []
        for key, _, digits in _TABLE_KEYS:
            value = mean_nested([f["mean"].get(key) for f in finals])
            cells.append(Cell(fmt_score(value, digits)))
        rows.append((m, cells))
    ticks = stage_names if same_stages else None
    panels = []
    if any(sim_layer.values()):
        panels.append(("subspace similarity to base, per layer", "layer", "s = (s_L + s_R) / 2", sim_layer, None))
    if any(any(v is not None for v in d.values()) for d in rank_layer.values()):
        panels.append(("effective rank of ΔW, per layer", "layer", "erank(ΔW)", rank_layer, None))
    panels.append(("subspace similarity to base, per stage", "after stage", "s = (s_L + s_R) / 2", sim_stage, ticks))
    if any(any(v is not None for v in d.values()) for d in rank_stage.values()):
        panels.append(("effective rank of ΔW, per stage", "after stage", "erank(ΔW)", rank_stage, ticks))
    n_seeds = max(len(s) for s in data.values())
    seeds_note = f" Means over {n_seeds} seeds." if n_seeds > 1 else ""
    others = [m for m in groups if m not in data]
    intro = ("How much did training move each weight matrix's principal structure? Subspace similarity compares the "
             "top-k singular subspaces with the base model's (1 = unchanged); the effective rank of ΔW = W − W₀ "
             "counts the directions the update uses. Per-layer values are after the last stage.")
    if others:
        intro += f" No stability data for: {', '.join(others)}."
    k = (next(iter(data.values()))[0].get("config") or {}).get("k")
    table = Table(
        caption="Weight stability after the last stage (means over matrices)"
        + (f", k = {k}" if k is not None else "") + seeds_note,
        header=["Method", *[label for _, label, _ in _TABLE_KEYS]], rows=rows, css="stability")
    blocks: list[Any] = [Paragraph(intro), TableBlock(table)]
    blocks.append(writer.figure(
        stability_figure(panels), "stability", "Weight stability",
        "Top: per layer after the last stage; bottom: model means after each stage. Subspace similarity of the "
        "top-k singular vectors to the base weights (left and right averaged) and effective rank of the update "
        "ΔW, one line per method." + seeds_note))
    return Section("Weight stability", "stability", blocks, Explanation("Weight stability:", STABILITY_FORMULAS))
