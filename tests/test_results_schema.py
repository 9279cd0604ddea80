"""The results schema: one set of dataclasses written by the trainer, read by the report, documented field by field."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from test_report_data import write_run

from losia_cl.errors import DataError
from losia_cl.results import MethodResults, RunInfo, read_results, read_run_info, schema_markdown

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "results-format.md").read_text()


def test_the_doc_holds_the_generated_field_tables():
    assert schema_markdown() in DOC


@pytest.mark.parametrize("cls", [RunInfo, MethodResults])
def test_every_field_is_documented(cls):
    for f in fields(cls):
        assert f.metadata.get("help"), f.name
        assert re.search(rf"^\| `{f.name}` \| (yes|no) \| .+ \|$", DOC, flags=re.M), f.name


def test_round_trip_and_unknown_keys_are_ignored(tmp_path):
    run = write_run(tmp_path / "run", tasks=("a", "b"), methods=("losia",))
    path = run / "losia" / "results.json"
    data = json.loads(path.read_text())
    data["a_newer_field"] = [1, 2]
    data["method_record"] = {"a": {"relocalizations": 3}, "b": {}}
    path.write_text(json.dumps(data))
    results = read_results(path)
    assert results.method_record["a"] == {"relocalizations": 3}
    again = MethodResults.from_json(json.loads(json.dumps(results.to_json())), path)
    assert again == results
    assert list(results.to_json())[0] == "format"
    info = read_run_info(run / "run.json")
    assert RunInfo.from_json(info.to_json(), run / "run.json") == info and info.tasks == ["a", "b"]


def test_a_non_finite_loss_is_written_as_null(tmp_path):
    run = write_run(tmp_path / "run", tasks=("a", "b"), methods=("losia",))
    path = run / "losia" / "results.json"
    results = read_results(path)
    results.losses["a"][1] = float("nan")
    data = results.to_json()
    assert data["losses"]["a"][1] is None
    path.write_text(json.dumps(data, allow_nan=False))
    assert read_results(path).losses["a"][1] is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.__setitem__("method_record", {"a": 3}), "key 'method_record.a' must be an object"),
    (lambda d: d.__setitem__("losses", {"a": [1.0, "x"]}), "key 'losses.a[1]' must be a finite number"),
    (lambda d: d.pop("total_parameters"), "required key 'total_parameters' is missing"),
])
def test_errors_name_the_file_and_the_field(tmp_path, change, message):
    run = write_run(tmp_path / "run", tasks=("a", "b"), methods=("losia",))
    path = run / "losia" / "results.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        read_results(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_the_doc_example_runs(tmp_path):
    block = re.search(r"```python\n(.*?)\n```", DOC, flags=re.S).group(1)
    run = write_run(tmp_path / "runs" / "demo-smollm2-135m-seed0", tasks=("a", "b"), methods=("losia",))
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("['a', 'b']") and run.exists()


def test_importing_the_schema_does_not_import_torch():
    code = "import sys, losia_cl.results; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"
