"""Missing, partial and malformed run directories: clear errors naming what is missing, written nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_data import parse_page, snapshot, write_run

from losia_cl.errors import DataError, LosiaError
from losia_cl.report import build_report, load_run

TASKS = ("a", "b")


def _run(tmp_path: Path, **kw) -> Path:
    return write_run(tmp_path / "run", tasks=TASKS, methods=kw.pop("methods", ("losia", "lora")), **kw)


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _fails(tmp_path: Path, run: Path, *patterns: str) -> DataError:
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as info:
        build_report([run], out=tmp_path / "out" / "r.html")
    for pattern in patterns:
        assert pattern in str(info.value), (pattern, str(info.value))
    assert snapshot(tmp_path) == before, "a failed report must not write anything"
    assert isinstance(info.value, LosiaError) and isinstance(info.value, ValueError)
    return info.value


def test_partial_run_reports_the_finished_methods_and_names_the_missing(tmp_path: Path) -> None:
    run = _run(tmp_path, methods=("losia", "lora", "full"), unfinished=("lora",))
    data = load_run(run)
    assert list(data.results) == ["losia", "full"] and data.missing == ("lora",)
    files = build_report([run], out=tmp_path / "out" / "r.html")
    page = parse_page(files.html)
    assert "Partial run: method(s) lora of " + str(run) + " have no results.json (unfinished)" in page.all_text
    assert [img["figure"] for img in page.images][:2] == ["score_matrix_losia", "score_matrix_full"]
    assert "score_matrix_lora" not in files.figures
    assert "lora" in files.markdown.read_text() and "Partial run" in files.markdown.read_text()


def test_missing_run_directory_and_run_json(tmp_path: Path) -> None:
    _fails(tmp_path, tmp_path / "nowhere", str(tmp_path / "nowhere"), "does not exist")
    run = _run(tmp_path)
    (run / "run.json").unlink()
    _fails(tmp_path, run, str(run), "run.json is missing")


def test_no_finished_method_is_an_error_naming_the_results_files(tmp_path: Path) -> None:
    run = _run(tmp_path, unfinished=("losia", "lora"))
    _fails(tmp_path, run, str(run), "no finished method", "losia/results.json", "lora/results.json")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("scores"), "'scores'"),
        (lambda d: d["scores"][1].pop(), "'scores[1]'"),
        (lambda d: d["scores"][2].__setitem__(0, 1.5), "'scores[2][0]'"),
        (lambda d: d["scores"][0].__setitem__(1, "high"), "'scores[0][1]'"),
        (lambda d: d["metrics"].pop("bwt"), "'metrics.bwt'"),
        (lambda d: d["metrics"].__setitem__("average_performance", 0.123456), "'metrics.average_performance'"),
        (lambda d: d.__setitem__("trainable_parameters", "many"), "'trainable_parameters'"),
        (lambda d: d.__setitem__("peak_memory_bytes", -1), "'peak_memory_bytes'"),
        (lambda d: d.__setitem__("format", "other/1"), "'format'"),
        (lambda d: d.__setitem__("method", "lora"), "'method'"),
        (lambda d: d.__setitem__("tasks", ["b", "a"]), "'tasks'"),
        (lambda d: d["subnet_overlap"].__setitem__("coverage_jaccard", [[1.0]]), "'subnet_overlap.coverage_jaccard'"),
        (lambda d: d["stability"].__setitem__("stages", {}), "'stability.stages'"),
        (lambda d: d["stability"]["stages"][0]["mean"].__setitem__("effective_rank", "x"),
         "'stability.stages[0].mean.effective_rank'"),
    ],
)
def test_malformed_results_json_names_the_file_and_the_key(tmp_path: Path, change, key: str) -> None:
    run = _run(tmp_path)
    path = run / "losia" / "results.json"
    _edit(path, change)
    _fails(tmp_path, run, str(path), key)


def test_invalid_json_names_the_file_and_the_line(tmp_path: Path) -> None:
    run = _run(tmp_path)
    path = run / "lora" / "results.json"
    path.write_text('{"format": "losia_cl.results/1",\n "scores": [1, 2,]}')
    _fails(tmp_path, run, str(path), "not valid JSON (line 2")
    path.write_text("[1, 2]")
    _fails(tmp_path, run, str(path), "JSON object")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("tasks"), "'tasks'"),
        (lambda d: d.__setitem__("tasks", ["a", "a"]), "'tasks' repeats"),
        (lambda d: d.__setitem__("format", "losia_cl.run/0"), "'format'"),
        (lambda d: d.__setitem__("seed", "zero"), "'seed'"),
        (lambda d: d.__setitem__("methods", "losia"), "'methods'"),
    ],
)
def test_malformed_run_json_names_the_key(tmp_path: Path, change, key: str) -> None:
    run = _run(tmp_path)
    _edit(run / "run.json", change)
    _fails(tmp_path, run, str(run / "run.json"), key)


def test_results_with_other_tasks_than_run_json(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _edit(run / "run.json", lambda d: d.__setitem__("tasks", ["a", "b", "c"]))
    _fails(tmp_path, run, "'tasks'", "run.json lists")
