"""A method added from outside the package (the module of docs/methods.md) runs through `losia-cl run` and `bench`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "methods.md").read_text()


def _plugin(tmp_path: Path) -> Path:
    """A package ``cl_plugins`` holding the documented example method module, outside the repository."""
    module = next(b for b in re.findall(r"```python\n(.*?)\n```", DOC, flags=re.S) if "@register_method" in b)
    package = tmp_path / "plugins" / "cl_plugins"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sgd_method.py").write_text(module + "\n")
    return package.parent


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "losia_cl.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env}, cwd=cwd)


@pytest.mark.slow
def test_a_method_module_registered_by_environment_variable_trains(tmp_path):
    env = {"PYTHONPATH": str(_plugin(tmp_path)), "LOSIA_CL_METHODS": "cl_plugins.sgd_method"}
    listed = _cli(["methods", "--options"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "sgd        Plain SGD on every parameter." in listed.stdout and "sgd.lr (default 0.01)" in listed.stdout
    bad = _cli(["run", "--methods", "sgd", "--method-option", "sgd.momentum=0.9", "--out", "o"], env, tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "losia-cl: error: method sgd: unknown option 'momentum'; valid options: lr")
    run = _cli(["run", "--model", "tiny-llama", "--methods", "sgd", "--tasks", "category,position",
                "--max-train-examples", "8", "--max-test-examples", "2", "--batch-size", "4", "--max-length", "48",
                "--method-option", "sgd.lr=0.05", "--stability", "--no-progress", "--no-report", "--out", "run"], env, tmp_path)
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "run" / "sgd" / "results.json").read_text())
    assert results["method_options"] == {"lr": 0.05} and results["steps"] == {"category": 2, "position": 2}
    assert results["subnet_overlap"] is None and results["method_record"] == {"category": {}, "position": {}}
    assert all(stage["mean"]["delta_rel_norm"] > 0 for stage in results["stability"]["stages"])


@pytest.mark.slow
def test_a_method_module_registered_by_entry_point_is_benchmarked(tmp_path):
    plugins = _plugin(tmp_path)
    dist = plugins / "cl_plugins-0.1.dist-info"  # what installing a distribution declaring the entry point leaves
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cl-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[losia_cl.methods]\nsgd = cl_plugins.sgd_method\n")
    sizes = ["--hidden-size", "32", "--intermediate-size", "64", "--num-layers", "2", "--vocab-size", "64",
             "--batch-size", "1", "--seq-len", "8", "--rounds", "1", "--warmup", "0"]
    bench = _cli(["bench", *sizes, "--methods", "sgd,full"], {"PYTHONPATH": str(plugins)}, tmp_path)
    assert bench.returncode == 0, bench.stderr
    rows = [line.split("|")[1:-1] for line in bench.stdout.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r[0].strip() for r in rows] == ["sgd", "full"]
    assert all(float(r[4]) >= 0 for r in rows)  # the memory column: measured in a subprocess that found sgd too


def test_a_method_module_that_does_not_import_is_a_one_line_error(tmp_path):
    result = _cli(["run", "--out", "run"], {"LOSIA_CL_METHODS": "cl_plugins_missing.sgd"}, tmp_path)
    assert result.returncode == 2 and not (tmp_path / "run").exists()
    assert result.stderr.strip() == ("losia-cl: error: $LOSIA_CL_METHODS: cannot import the method module "
                                     "'cl_plugins_missing.sgd' (ModuleNotFoundError: No module named "
                                     "'cl_plugins_missing')")
