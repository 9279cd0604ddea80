"""compare_runs side by side, the report/compare sub-commands, and a light import."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_report_data import parse_page, row_of, snapshot, write_run

from losia_cl.errors import DataError
from losia_cl.report import add_cli, compare_runs
from losia_cl.report.formatting import fmt_score


def test_compare_puts_runs_side_by_side_in_column_groups(tmp_path: Path) -> None:
    a = write_run(tmp_path / "demo-run", seed=0, methods=("losia", "lora"), tasks=("a", "b"))
    b = write_run(tmp_path / "trace-run", seed=3, methods=("losia", "full"), tasks=("x", "y", "z"),
                  stream="trace", unfinished=("full",))
    before = snapshot(tmp_path)
    files = compare_runs([a, b], out=tmp_path / "cmp" / "compare.html")
    assert {k for k in snapshot(tmp_path) if k not in before} == {str(p.relative_to(tmp_path)) for p in files.paths}
    assert files.figures == ("compare_metrics", "compare_ap_curves")
    page = parse_page(files.html)
    assert [img["figure"] for img in page.images] == list(files.figures)
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    table = page.table("Continual-learning metrics, one column group per run")
    groups = [text for text, _ in table["rows"][0]]
    assert groups == ["", "demo-run", "trace-run"]
    for run, offset in ((a, 0), (b, 5)):
        results = json.loads((run / "losia" / "results.json").read_text())
        cells = [c for c, _ in row_of(table, "losia")]
        assert cells[offset] == fmt_score(results["metrics"]["average_performance"])
        assert cells[offset + 3] == fmt_score(results["metrics"]["forgetting"])
    # lora only ran in the first run; full did not finish in the second
    assert [c for c, _ in row_of(table, "lora")][5:] == ["—"] * 5
    text = page.all_text
    assert "Partial run trace-run: method(s) full have no results.json" in text
    assert "Score matrix of losia" in text


def test_compare_needs_two_runs(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", methods=("lora",), tasks=("a", "b"))
    with pytest.raises(DataError, match="at least two"):
        compare_runs([a], out=tmp_path / "c.html")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="losia-cl")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_report_and_compare_write_the_path_and_return_zero(tmp_path: Path, capsys) -> None:
    a = write_run(tmp_path / "a", methods=("lora",), tasks=("a", "b"))
    b = write_run(tmp_path / "b", methods=("lora",), tasks=("a", "b"), seed=1)
    args = _parser().parse_args(["report", str(a), "--out", str(tmp_path / "r" / "report.html")])
    assert args.func(args) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'r' / 'report.html'}\n"
    args = _parser().parse_args(["compare", str(a), str(b), "--out", str(tmp_path / "c.html")])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c.html")
    args = _parser().parse_args(["report", str(tmp_path / "missing")])
    with pytest.raises(DataError, match="does not exist"):
        args.func(args)


def test_import_is_light_and_reports_never_touch_pyplot(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", methods=("lora",), tasks=("a", "b"))
    code = f"""
import sys
import losia_cl.report as r
r.build_report, r.compare_runs, r.add_cli
heavy = [m for m in ("matplotlib", "torch", "transformers", "avalanche", "losia_cl.trainer") if m in sys.modules]
assert not heavy, heavy
r.build_report([{str(run)!r}], out={str(tmp_path / "o" / "r.html")!r})
assert "matplotlib.pyplot" not in sys.modules
assert "losia_cl.trainer" not in sys.modules and "transformers" not in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"  # library code prints nothing


def test_help_texts_print_percent_signs_once(capsys) -> None:
    from losia_cl.cli import main
    from losia_cl.report.aggregate import DETAIL_TASK_LIMIT

    for command in ("report", "compare"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "%%" not in text and "%(" not in text
        if command == "report":
            assert "mean ± 95% CI" in text and f"more than {DETAIL_TASK_LIMIT} tasks get summary views" in text
        assert "exit code 2" in text
