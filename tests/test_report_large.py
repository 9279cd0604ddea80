"""Long streams: past DETAIL_TASK_LIMIT tasks the report switches to summary views of bounded size."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from test_report_data import parse_page, row_of, write_run

from losia_cl.metrics import cl_metrics
from losia_cl.report import build_report
from losia_cl.report.aggregate import DETAIL_TASK_LIMIT, ReportRuns
from losia_cl.report.document import FigureBlock, TableBlock
from losia_cl.report.figures import DPI, RenderedFigure
from losia_cl.report.formatting import fmt_score
from losia_cl.report.loading import load_runs
from losia_cl.report.sections import forgetting, scores


class _NoRender:
    """A figure writer that keeps the figure objects instead of rendering them."""

    def __init__(self) -> None:
        self.figures: dict[str, object] = {}

    def figure(self, fig, name: str, title: str, caption: str) -> FigureBlock:
        self.figures[name] = fig
        return FigureBlock(RenderedFigure(name, title, caption, Path(f"{name}.png"), Path(f"{name}.svg"), b"", b""))


def _tasks(n: int) -> tuple[str, ...]:
    return tuple(f"task{i:02d}" for i in range(1, n + 1))


@pytest.mark.parametrize("num_tasks", [DETAIL_TASK_LIMIT, DETAIL_TASK_LIMIT + 1])
def test_views_switch_after_the_threshold(tmp_path: Path, num_tasks: int) -> None:
    run = write_run(tmp_path / "run", methods=("lora",), tasks=_tasks(num_tasks))
    runs = ReportRuns.of(load_runs([run]))
    writer = _NoRender()
    tables = [b.table.caption for b in scores.section(runs, writer).blocks if isinstance(b, TableBlock)]
    forgetting_tables = [b.table for b in forgetting.section(runs, writer).blocks if isinstance(b, TableBlock)]
    heatmap = writer.figures["score_matrix_lora"].axes[0]
    panels = [ax for ax in writer.figures["forgetting_curves"].axes if ax.get_visible()]
    if num_tasks <= DETAIL_TASK_LIMIT:
        assert not runs.summary_view
        assert tables == ["Score matrix of lora"]
        assert len(heatmap.texts) == (num_tasks + 1) * num_tasks  # a number in every cell
        assert len(panels) == num_tasks  # one panel per task
        assert [len(t.rows) for t in forgetting_tables] == [1, 1]  # one row per method, one column per stage
    else:
        assert runs.summary_view
        assert tables == ["Score of each task right after its training and after the last task"]
        assert len(heatmap.texts) == 0
        assert len(heatmap.get_xticklabels()) <= 40 and len(heatmap.get_yticklabels()) <= 40
        assert len(panels) == 2  # AP_i and F_i over the stages
        assert [len(t.rows) for t in forgetting_tables] == [num_tasks]  # one row per stage


@pytest.mark.slow
def test_long_stream_report_shows_per_task_and_per_stage_numbers(tmp_path: Path) -> None:
    tasks = _tasks(64)
    run = write_run(tmp_path / "run", methods=("losia", "lora"), tasks=tasks)
    files = build_report([run], out=tmp_path / "out" / "r.html")
    page = parse_page(files.html)
    results = {m: json.loads((run / m / "results.json").read_text()) for m in ("losia", "lora")}
    table = page.table("Score of each task right after its training and after the last task")
    assert [c for c, _ in table["rows"][0]] == ["", "losia", "lora"]
    for j in (0, 31, 63):
        cells = [c for c, _ in row_of(table, tasks[j])]
        expected = [fmt_score(results[m]["scores"][i][j]) for m in ("losia", "lora") for i in (j + 1, len(tasks))]
        assert cells == expected
    stages = page.table("Average performance AP_i and average forgetting F_i after each stage")
    for i in (0, 1, 63):
        cells = [c for c, _ in row_of(stages, f"after {tasks[i]}")]
        expected = [fmt_score(results[m]["metrics"][key][i])
                    for key in ("average_performance_curve", "forgetting_curve") for m in ("losia", "lora")]
        assert cells == expected
    assert not [t for t in page.tables if t["caption"].startswith("Score matrix of")]
    # the heatmaps keep a bounded size (10 x 8 inches at most) whatever the number of tasks
    for png in files.png:
        width, height = struct.unpack(">II", png.read_bytes()[16:24])
        if png.stem.startswith(("score_matrix_", "overlap_jaccard")):
            assert width <= 10 * DPI * (2 if png.stem == "overlap_jaccard" else 1) and height <= 8 * DPI, png
    md = files.markdown.read_text()
    assert md.count("\n") < 64 * 3 + 400  # per-task and per-stage rows, no (T+1) x T matrices


def _forgetting_by_definition(s: np.ndarray, i: int) -> float | None:
    if i < 2:
        return None
    return math.fsum(max(s[l, j - 1] - s[i, j - 1] for l in range(j, i)) for j in range(1, i)) / (i - 1)


@pytest.mark.parametrize("num_tasks", [1, 2, 5, 33])
def test_forgetting_curve_the_loader_checks_equals_its_definition(num_tasks: int) -> None:
    s = np.round(np.random.default_rng(num_tasks).uniform(0, 1, (num_tasks + 1, num_tasks)), 4)
    m = cl_metrics(s)
    assert m.forgetting_curve == [_forgetting_by_definition(s, i) for i in range(1, num_tasks + 1)]
    assert m.forgetting == m.forgetting_curve[-1]
