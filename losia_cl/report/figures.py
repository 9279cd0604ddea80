"""The report's figures, drawn with matplotlib's object-oriented API.

Every function builds a fresh :class:`matplotlib.figure.Figure` (no pyplot, no
global figure state) and returns it; :func:`render_figure` renders it as PNG and
SVG.  matplotlib is imported inside the functions, so importing this module is
cheap.  Style settings are applied with ``matplotlib.rc_context`` for the
duration of one figure only.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .formatting import fmt_score

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "MAX_TICKS",
    "RenderedFigure",
    "render_figure",
    "method_colors",
    "score_matrix_figure",
    "forgetting_curves_figure",
    "stage_curves_figure",
    "overlap_jaccard_figure",
    "overlap_layers_figure",
    "overlap_coverage_figure",
    "stability_figure",
    "compare_metrics_figure",
    "compare_curves_figure",
    "chance_cumulative_coverage",
]

#: resolution of the PNG files (and of the images embedded in the HTML).
DPI = 100
#: most tick labels on an axis of tasks or stages (beyond it every k-th one is labelled).
MAX_TICKS = 40
#: largest width and height, in inches, of a heatmap without numbers in its cells.
_SUMMARY_SIZE = (10.0, 8.0)

_STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "svg.hashsalt": "losia-cl",  # deterministic ids in the SVG files
    "svg.fonttype": "path",
    "text.parse_math": False,  # task and method names are plain text: a "$" is a dollar sign
}

_KNOWN_COLORS = {
    "losia": "#1f77b4",
    "losia-pro": "#17becf",
    "lora": "#ff7f0e",
    "dora": "#d62728",
    "pissa": "#9467bd",
    "galore": "#7b4173",
    "full": "#2ca02c",
}
_EXTRA_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39")


@dataclass(frozen=True)
class RenderedFigure:
    """A rendered figure: the bytes of its PNG and SVG files and the paths they are written to."""

    name: str
    title: str
    caption: str
    png: Path
    svg: Path
    png_bytes: bytes
    svg_bytes: bytes


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        yield


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def render_figure(fig: Figure, out_dir: Path, name: str, title: str, caption: str) -> RenderedFigure:
    """Render ``fig`` as PNG and SVG bytes for ``out_dir/name.png`` and ``out_dir/name.svg``.

    The files carry no timestamps (reproducible bytes); nothing is written here.
    """
    png_buf, svg_buf = io.BytesIO(), io.BytesIO()
    with _style():
        fig.savefig(png_buf, format="png", dpi=DPI, metadata={"Software": None})
        fig.savefig(svg_buf, format="svg", metadata={"Date": None, "Creator": None})
    return RenderedFigure(name=name, title=title, caption=caption, png=out_dir / f"{name}.png",
                          svg=out_dir / f"{name}.svg", png_bytes=png_buf.getvalue(), svg_bytes=svg_buf.getvalue())


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A stable color per method: fixed ones for the known methods, then a palette."""
    colors: dict[str, str] = {}
    extra = iter(_EXTRA_COLORS * (1 + len(methods) // len(_EXTRA_COLORS)))
    for m in methods:
        colors[m] = _KNOWN_COLORS.get(m) or next(extra)
    return colors


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _ticks(labels: Sequence[str], limit: int, first: int = 0) -> tuple[list[int], list[str]]:
    """Positions ``first, first + 1, ...`` and labels of at most about ``MAX_TICKS`` evenly spaced ticks."""
    step = max(1, math.ceil(len(labels) / MAX_TICKS))
    keep = range(0, len(labels), step)
    return [first + i for i in keep], [_short(labels[i], limit) for i in keep]


def _text_color(cmap: Any, norm_value: float) -> str:
    r, g, b, _ = cmap(norm_value)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _heatmap(
    ax: Axes,
    values: np.ndarray,
    texts: Sequence[Sequence[str]] | None,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap_name: str = "viridis",
    outline: Sequence[tuple[int, int]] = (),
    fontsize: float = 7,
) -> Any:
    import matplotlib
    from matplotlib.patches import Rectangle

    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="#dddddd")
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    if texts is None:  # a summary view: no numbers in the cells, every k-th label
        ax.set_xticks(*_ticks(col_labels, 18), rotation=90)
        ax.set_yticks(*_ticks(row_labels, 24))
    else:
        ax.set_xticks(range(len(col_labels)), [_short(c) for c in col_labels], rotation=30, ha="right")
        ax.set_yticks(range(len(row_labels)), [_short(r, 24) for r in row_labels])
    ax.tick_params(length=0)
    span = (vmax - vmin) or 1.0
    for i in range(values.shape[0] if texts is not None else 0):
        for j in range(values.shape[1]):
            v = values[i, j]
            color = "black" if not math.isfinite(v) else _text_color(cmap, min(1.0, max(0.0, (v - vmin) / span)))
            ax.text(j, i, texts[i][j], ha="center", va="center", color=color, fontsize=fontsize)
    for i, j in outline:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=1.5))
    for spine in ax.spines.values():
        spine.set_visible(False)
    return image


# ---- per-method score matrix


def score_matrix_figure(
    method: str, tasks: Sequence[str], scores: np.ndarray, n_seeds: int = 1, *, annotate: bool = True
) -> Figure:
    """Heatmap of the ``(T+1) × T`` score matrix (rows: base, after task i; columns: tasks).

    ``annotate``: the values in the cells and the diagonal outlined; without
    it (long streams) the figure keeps a bounded size and labels every k-th task.
    """
    t = len(tasks)
    with _style():
        size = (2.0 + 0.8 * t, 1.3 + 0.38 * (t + 1))
        fig = _new_figure(*(size if annotate else map(min, size, _SUMMARY_SIZE)))
        ax = fig.add_subplot()
        texts = [[fmt_score(v) for v in row] for row in scores] if annotate else None
        rows = ["base"] + [f"after {task}" for task in tasks]
        image = _heatmap(ax, np.asarray(scores, dtype=float), texts, rows, tasks,
                         outline=[(j + 1, j) for j in range(t)] if annotate else ())
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02, label="score")
        title = f"{method}: score matrix"
        if n_seeds > 1:
            title += f" (mean of {n_seeds} seeds)"
        ax.set_title(title)
        ax.set_xlabel("evaluated task")
    return fig


# ---- forgetting curves


def forgetting_curves_figure(
    tasks: Sequence[str],
    curves: Mapping[str, Sequence[tuple[float, float | None]]] | Mapping[str, Any],
    *,
    ylabel: str = "score",
    bounded: bool = True,
) -> Figure:
    """One panel per task: its score after every stage, one line per method.

    ``curves[method][j]`` is a sequence over stages ``0..T`` of ``(mean, half_width)``
    for task ``j``; a band shows the interval when ``half_width`` is given.  ``bounded``: scores in
    [0, 1] (the y axis stays inside); otherwise the axis fits the values (e.g. log-likelihoods).
    """
    t = len(tasks)
    methods = list(curves)
    colors = method_colors(methods)
    ncols = min(t, 4)
    nrows = math.ceil(t / ncols)
    stages = np.arange(t + 1)
    stage_labels = ["base"] + [str(i) for i in range(1, t + 1)]
    with _style():
        fig = _new_figure(0.4 + 2.3 * ncols, 0.6 + 1.9 * nrows)
        axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
        lo, hi = (1.0, 0.0) if bounded else (math.inf, -math.inf)
        for j, task in enumerate(tasks):
            ax = axes[j // ncols][j % ncols]
            ax.axvline(j + 1, color="#999999", linestyle=":", linewidth=1)
            for m in methods:
                series = curves[m][j]
                mean = np.array([s[0] for s in series], dtype=float)
                half = np.array([np.nan if s[1] is None else s[1] for s in series], dtype=float)
                ax.plot(stages, mean, marker="o", markersize=3, linewidth=1.3, color=colors[m], label=m)
                if np.isfinite(half).any():
                    ax.fill_between(stages, mean - half, mean + half, color=colors[m], alpha=0.15, linewidth=0)
                lo, hi = min(lo, float(np.nanmin(mean))), max(hi, float(np.nanmax(mean)))
            ax.set_title(f"task {j + 1}: {_short(task, 24)}")
            ax.set_xticks(stages, stage_labels)
            ax.set_xlabel("after stage")
            if j % ncols == 0:
                ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        for k in range(t, nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        pad = 0.05 if bounded else 0.05 * max(hi - lo, 1e-3)
        if bounded:
            axes[0][0].set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) if hi > lo else 1.0)
        else:
            axes[0][0].set_ylim(lo - pad, hi + pad)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(methods), 6), frameon=False)
    return fig


def stage_curves_figure(
    tasks: Sequence[str],
    panels: Sequence[tuple[str, str, Mapping[str, Sequence[tuple[float | None, float | None]]]]],
) -> Figure:
    """Side-by-side panels over the stages, one line per method: ``(title, y label, {method: [(mean, half)]})``.

    The summary of the forgetting curves for long streams: one point per stage
    instead of one panel per task; bands show ``half`` (the CI) when given.
    """
    methods: list[str] = []
    for _, _, series in panels:
        methods.extend(m for m in series if m not in methods)
    colors = method_colors(methods)
    stages = np.arange(1, len(tasks) + 1)
    with _style():
        fig = _new_figure(0.4 + 4.2 * len(panels), 3.2)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, ylabel, series) in zip(axes, panels):
            for m, points in series.items():
                mean = np.array([_nan(p[0]) for p in points])
                half = np.array([_nan(p[1]) for p in points])
                ax.plot(stages, mean, linewidth=1.2, color=colors[m], label=m)
                if np.isfinite(half).any():
                    ax.fill_between(stages, mean - half, mean + half, color=colors[m], alpha=0.15, linewidth=0)
            ax.set_xticks(*_ticks(list(tasks), 14, first=1), rotation=90)
            ax.set_title(title)
            ax.set_xlabel("after task")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(methods), 6), frameon=False)
    return fig


# ---- subnet overlap


def overlap_jaccard_figure(
    tasks: Sequence[str],
    matrices: Mapping[str, tuple[list[list[float | None]], list[list[float | None]] | None]],
    *,
    annotate: bool = True,
) -> Figure:
    """Per method, the task × task coverage Jaccard heatmap; cells show ``J`` and, below, ``×`` the ratio to chance.

    Without ``annotate`` (long streams) the cells hold no numbers and each panel keeps a bounded size.
    """
    methods = list(matrices)
    t = len(tasks)
    with _style():
        if annotate:
            fig = _new_figure(0.6 + (1.4 + 0.6 * t) * len(methods), 1.2 + 0.45 * t)
        else:
            fig = _new_figure(0.6 + _SUMMARY_SIZE[1] * len(methods), _SUMMARY_SIZE[1])
        axes = fig.subplots(1, len(methods), squeeze=False)[0]
        image = None
        for ax, m in zip(axes, methods):
            jac, ratio = matrices[m]
            values = np.array([[np.nan if v is None else v for v in row] for row in jac], dtype=float)
            texts: list[list[str]] | None = [] if annotate else None
            for a in range(t if annotate else 0):
                row = []
                for b in range(t):
                    text = fmt_score(jac[a][b], 2)
                    if ratio is not None and a != b and ratio[a][b] is not None:
                        text += f"\n×{ratio[a][b]:.1f}"
                    row.append(text)
                texts.append(row)  # type: ignore[union-attr]
            image = _heatmap(ax, values, texts, tasks, tasks, cmap_name="magma", fontsize=6)
            ax.set_title(f"{m}: coverage Jaccard")
        if image is not None:
            fig.colorbar(image, ax=list(axes), fraction=0.04, pad=0.02, label="Jaccard")
    return fig


def overlap_layers_figure(profiles: Mapping[str, Mapping[int, tuple[float | None, float | None, float | None]]]) -> Figure:
    """Per-layer overlap profile: mean coverage Jaccard (solid) and its chance level (dashed); ratio to chance.

    ``profiles[method][layer] = (mean_jaccard, chance_jaccard or None, mean_ratio)``.
    """
    methods = list(profiles)
    colors = method_colors(methods)
    with _style():
        fig = _new_figure(6.4, 2.5)
        ax_j, ax_r = fig.subplots(1, 2)
        for m in methods:
            layers = sorted(profiles[m])
            x = np.array(layers, dtype=float)
            jac = np.array([_nan(profiles[m][layer][0]) for layer in layers])
            chance = np.array([_nan(profiles[m][layer][1]) for layer in layers])
            ratio = np.array([_nan(profiles[m][layer][2]) for layer in layers])
            ax_j.plot(x, jac, marker="o", markersize=3, color=colors[m], label=f"{m}")
            if np.isfinite(chance).any():
                ax_j.plot(x, chance, linestyle="--", linewidth=1, color=colors[m], label=f"{m} chance")
            ax_r.plot(x, ratio, marker="o", markersize=3, color=colors[m], label=m)
        ax_r.axhline(1.0, color="#666666", linestyle="--", linewidth=1, label="chance (ratio 1)")
        ax_j.set_title("coverage Jaccard per layer (mean over task pairs)")
        ax_r.set_title("ratio to chance per layer")
        for ax in (ax_j, ax_r):
            ax.set_xlabel("layer")
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax_j.set_ylabel("Jaccard")
        ax_r.set_ylabel("J / J_chance")
        ax_j.set_ylim(bottom=0)
        ax_r.set_ylim(bottom=0)
    return fig


def overlap_coverage_figure(
    tasks: Sequence[str], coverage: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]]
) -> Figure:
    """Cumulative coverage after each task (solid) against the random-chance level (dashed), per method."""
    methods = list(coverage)
    colors = method_colors(methods)
    x = np.arange(1, len(tasks) + 1)
    long = len(tasks) > MAX_TICKS
    with _style():
        fig = _new_figure(min(max(3.8, 1.6 + 0.6 * len(tasks)), _SUMMARY_SIZE[0]), 2.6)
        ax = fig.add_subplot()
        marker = {} if long else {"marker": "o", "markersize": 3}
        for m in methods:
            actual, chance = coverage[m]
            ax.plot(x, [_nan(v) for v in actual], color=colors[m], label=m, **marker)
            ax.plot(x, [_nan(v) for v in chance], linestyle="--", linewidth=1, color=colors[m], label=f"{m} chance")
        if long:
            ax.set_xticks(*_ticks(list(tasks), 14, first=1), rotation=90)
        else:
            ax.set_xticks(x, [_short(t, 14) for t in tasks], rotation=30, ha="right")
        ax.set_xlabel("after task")
        ax.set_ylabel("fraction of entries trained")
        ax.set_title("cumulative coverage vs random chance")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    return fig


def chance_cumulative_coverage(task_coverages: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Random-chance cumulative coverage of one matrix: ``1 − Π_{a ≤ t} (1 − c_a)`` for each ``t``.

    ``task_coverages`` holds, per matrix, the covered fraction ``c_a`` of each
    task (``None`` = nothing trained); the result is the mean over matrices.
    """
    if not task_coverages:
        return []
    n = len(task_coverages[0])
    out: list[float | None] = []
    for t in range(n):
        vals = []
        for cov in task_coverages:
            miss = 1.0
            for c in cov[: t + 1]:
                miss *= 1.0 - (c or 0.0)
            vals.append(1.0 - miss)
        out.append(float(np.mean(vals)))
    return out


# ---- weight stability


def stability_figure(
    panels: Sequence[tuple[str, str, str, Mapping[str, Mapping[int, float | None]], Sequence[str] | None]],
) -> Figure:
    """Panels ``(title, x label, y label, {method: {x: value}}, x tick labels or None)``, one line per method.

    Two panels per row; ``x`` is a layer index or a stage number (1-based, then
    the tick labels name the stages).
    """
    methods: list[str] = []
    for panel in panels:
        methods.extend(m for m in panel[3] if m not in methods)
    colors = method_colors(methods)
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with _style():
        fig = _new_figure(0.4 + 3.1 * ncols, 0.3 + 2.3 * nrows)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, (title, xlabel, ylabel, series, ticks) in enumerate(panels):
            ax = axes[k // ncols][k % ncols]
            for m, values in series.items():
                xs = sorted(values)
                marker = {} if len(xs) > MAX_TICKS else {"marker": "o", "markersize": 3}
                ax.plot(xs, [_nan(values[x]) for x in xs], color=colors[m], label=m, **marker)
            if ticks is not None and len(ticks) > MAX_TICKS:
                ax.set_xticks(*_ticks(list(ticks), 12, first=1), rotation=90)
            elif ticks is not None:
                ax.set_xticks(range(1, len(ticks) + 1), [_short(t, 12) for t in ticks], rotation=30, ha="right")
            else:
                ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
        for k in range(len(panels), nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
    return fig


# ---- compare


def compare_metrics_figure(
    runs: Sequence[str], methods: Sequence[str], metrics: Sequence[tuple[str, Mapping[tuple[str, str], float | None]]]
) -> Figure:
    """Grouped bars: one panel per metric, methods on the x axis, one bar per run."""
    palette = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(methods))
    with _style():
        fig = _new_figure(0.6 + 2.2 * len(metrics), 2.7)
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, (label, values) in zip(axes, metrics):
            for k, run in enumerate(runs):
                heights = [_nan(values.get((run, m))) for m in methods]
                ax.bar(x + (k - (len(runs) - 1) / 2) * width, heights, width,
                       color=palette[k % len(palette)], label=run)
            ax.axhline(0, color="#444444", linewidth=0.6)
            ax.set_xticks(x, [_short(m, 10) for m in methods], rotation=30, ha="right")
            ax.set_title(label)
            ax.grid(alpha=0.3, axis="y")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(runs), 4), frameon=False)
    return fig


def compare_curves_figure(runs: Sequence[tuple[str, Mapping[str, Sequence[float | None]]]]) -> Figure:
    """One panel per run: average performance ``AP_i`` after each stage, one line per method."""
    methods: list[str] = []
    for _, curves in runs:
        methods.extend(m for m in curves if m not in methods)
    colors = method_colors(methods)
    with _style():
        fig = _new_figure(0.4 + 2.6 * len(runs), 2.6)
        axes = fig.subplots(1, len(runs), squeeze=False, sharey=True)[0]
        for ax, (label, curves) in zip(axes, runs):
            for m, curve in curves.items():
                marker = {} if len(curve) > MAX_TICKS else {"marker": "o", "markersize": 3}
                ax.plot(np.arange(1, len(curve) + 1), [_nan(v) for v in curve], color=colors[m], label=m, **marker)
            ax.set_title(_short(label, 30))
            ax.set_xlabel("after stage")
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0].set_ylabel("average performance AP_i")
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), frameon=False)
    return fig


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
