"""build_report on a small finished run: the page parses, embeds one PNG per figure, shows the numbers of results.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_report_data import METHODS, TASKS, parse_page, row_of, snapshot, write_run

from losia_cl.report import ReportFiles, build_report
from losia_cl.report.formatting import fmt_count, fmt_score

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_FIGURES = [f"score_matrix_{m}" for m in METHODS] + [
    "forgetting_curves", "overlap_jaccard", "overlap_layers", "overlap_coverage", "stability",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ReportFiles, dict[str, bytes], dict[str, bytes]]:
    """One run, one report into a separate folder, with snapshots of the whole tmp folder before and after."""
    root = tmp_path_factory.mktemp("single")
    run = write_run(root / "run")
    before = snapshot(root)
    files = build_report([run], out=root / "out" / "page.html")
    return root, run, files, before, snapshot(root)


def test_writes_html_markdown_and_png_svg_per_figure(built) -> None:
    root, _, files, _, _ = built
    assert files.html == root / "out" / "page.html" and files.markdown == root / "out" / "page.md"
    assert list(files.figures) == EXPECTED_FIGURES
    assert [p.name for p in files.png] == [f"{n}.png" for n in EXPECTED_FIGURES]
    assert [p.name for p in files.svg] == [f"{n}.svg" for n in EXPECTED_FIGURES]
    for png in files.png:
        assert png.read_bytes().startswith(PNG_MAGIC)
    for svg in files.svg:
        assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml") and "</svg>" in svg.read_text()
    assert all(p.is_file() for p in files.paths)


def test_nothing_is_written_outside_the_output_folder(built) -> None:
    root, _, files, before, after = built
    assert {k: v for k, v in after.items() if not k.startswith("out/")} == before
    written = {str(p.relative_to(root)) for p in files.paths}
    assert {k for k in after if k.startswith("out/")} == written


def test_html_parses_with_one_embedded_image_per_figure_and_no_links_out(built) -> None:
    _, _, files, _, _ = built
    text = files.html.read_text(encoding="utf-8")
    page = parse_page(files.html)
    assert [img["figure"] for img in page.images] == EXPECTED_FIGURES
    for img, png in zip(page.images, files.png):
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]) == png.read_bytes()
        assert img["alt"]
    # self-contained: no scripts, no style sheets or images fetched, no links out of the page
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert all(u.startswith(("data:", "#")) for u in page.urls)
    assert "http:" not in text and "https:" not in text


def test_every_score_cell_and_metric_of_results_json_is_in_the_page(built) -> None:
    _, run, files, _, _ = built
    page = parse_page(files.html)
    comparison = page.table("Continual-learning metrics and costs per method")
    header = [c for c, _ in comparison["rows"][0]]
    assert header == ["Method", "AP", "BWT", "FWT", "Forgetting", "LA", "Trainable params", "Train time", "Peak memory"]
    for method in METHODS:
        results = json.loads((run / method / "results.json").read_text())
        table = page.table(f"Score matrix of {method}")
        assert [c for c, _ in table["rows"][0]] == ["after \\ task", *TASKS]
        for i, label in enumerate(["base"] + [f"after {t}" for t in TASKS]):
            cells = row_of(table, label)
            assert [c for c, _ in cells] == [fmt_score(v) for v in results["scores"][i]]
            # the diagonal (task right after its training) is marked
            assert [cls == "diag" for _, cls in cells] == [i == j + 1 for j in range(len(TASKS))]
        m = results["metrics"]
        row = [c for c, _ in row_of(comparison, method)]
        assert row[:5] == [fmt_score(m[k]) for k in ("average_performance", "bwt", "fwt", "forgetting",
                                                     "learning_accuracy")]
        assert row[5].startswith(fmt_count(results["trainable_parameters"]) + " (")
        curve = [c for c, _ in row_of(page.table("Average performance AP_i"), method)]
        assert curve == [fmt_score(v) for v in m["average_performance_curve"]]


def test_best_value_per_column_is_marked_in_the_direction_of_the_column(built) -> None:
    _, run, files, _, _ = built
    page = parse_page(files.html)
    comparison = page.table("Continual-learning metrics and costs per method")
    results = {m: json.loads((run / m / "results.json").read_text()) for m in METHODS}
    keys = [("average_performance", max), ("bwt", max), ("fwt", max), ("forgetting", min),
            ("learning_accuracy", max), ("trainable_parameters", min), ("train_seconds", min),
            ("peak_memory_bytes", min)]
    for col, (key, pick) in enumerate(keys):
        values = {m: (r["metrics"][key] if key in r["metrics"] else r[key]) for m, r in results.items()}
        best = pick(values.values())
        for m in METHODS:
            _, cls = row_of(comparison, m)[col]
            assert ("best" in cls.split()) == (values[m] == best), (key, m)


def test_page_states_the_formulas_and_the_run(built) -> None:
    _, run, files, _, _ = built
    text = parse_page(files.html).all_text
    for needle in ("How to read this", "BWT = 1/(T−1) Σ_{j=1..T−1} (S[T, j] − S[j, j])",
                   "FWT = 1/(T−1) Σ_{j=2..T} (S[j−1, j] − S[0, j])", "LA = (1/T) Σ_{j=1..T} S[j, j]",
                   "J(a, b) = |Cov_a ∩ Cov_b| / |Cov_a ∪ Cov_b|", "erank(M) = exp(−Σ_i p_i log p_i)",
                   "x̄ ± t_{0.975, n−1} · s / √n", str(run), "smollm2-135m-instruct"):
        assert needle in text, needle
    assert "Partial run" not in text


def test_markdown_summary_links_the_png_files_and_holds_the_tables(built) -> None:
    _, run, files, _, _ = built
    md = files.markdown.read_text(encoding="utf-8")
    for png in files.png:
        assert f"]({png.name})" in md
    results = json.loads((run / "losia" / "results.json").read_text())
    assert "| base | " + " | ".join(fmt_score(v) for v in results["scores"][0]) + " |" in md
    assert f"**{fmt_score(max(json.loads((run / m / 'results.json').read_text())['metrics']['average_performance'] for m in METHODS))}**" in md
    assert "## How to read this" in md


def test_default_output_goes_to_run_dir_report_folder_only(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", methods=("losia", "full"), tasks=("a", "b"))
    before = snapshot(tmp_path)
    files = build_report([run])
    assert files.html == run / "report" / "report.html" and files.markdown == run / "report" / "report.md"
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("run/report/")} == before
    # a second report over the same run reads the report/ folder as no method and gives identical files
    again = build_report([run], out=tmp_path / "again.html")
    assert again.figures == files.figures
    for a, b in zip(files.png + files.svg, again.png + again.svg):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_out_may_be_an_existing_folder_and_must_be_html(tmp_path: Path) -> None:
    from losia_cl.errors import ConfigError

    run = write_run(tmp_path / "run", methods=("lora",), tasks=("a", "b"))
    (tmp_path / "folder").mkdir()
    files = build_report([run], out=tmp_path / "folder")
    assert files.html == tmp_path / "folder" / "report.html"
    # no LoSiA method: no overlap figures
    assert files.figures == ("score_matrix_lora", "forgetting_curves", "stability")
    with pytest.raises(ConfigError, match=r"\.html"):
        build_report([run], out=tmp_path / "x.pdf")


def test_single_task_run_without_stability(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", tasks=("only",), methods=("losia", "full"))
    for method in ("losia", "full"):
        path = run / method / "results.json"
        data = json.loads(path.read_text())
        data["stability"] = None
        path.write_text(json.dumps(data))
    files = build_report([run], out=tmp_path / "out" / "r.html")
    # one task: no pair of tasks to overlap, BWT/FWT/forgetting undefined; no stability data: no stability figure
    assert files.figures == ("score_matrix_losia", "score_matrix_full", "forgetting_curves", "overlap_coverage")
    page = parse_page(files.html)
    assert len(page.images) == 4
    cells = [c for c, _ in row_of(page.table("Continual-learning metrics"), "losia")]
    assert cells[1:4] == ["—", "—", "—"]
