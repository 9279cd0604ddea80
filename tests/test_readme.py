"""The README's promises: its two set-up commands, the CI script, the runnable API example, the config fields."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from doc_blocks import find_block, run_block

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _setup_commands() -> list[str]:
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_exactly_two_setup_commands_main_job_and_tests():
    commands = _setup_commands()
    assert len(commands) == 2
    assert commands[0].strip().endswith("losia-cl run") and "pip install" in commands[0]
    assert "pytest" in commands[1] and "pip install" in commands[1] and "[test]" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _setup_commands()[1].strip() in ci.splitlines()


def test_python_example_runs():
    outcome = run_block(find_block("README.md", "## Python API"))
    assert outcome.error is None, outcome.error
    assert "trainable entries" in outcome.stdout


def test_trainer_example_runs():
    outcome = run_block(find_block("README.md", "With the Hugging Face `Trainer`"))
    assert outcome.error is None, outcome.error
    assert "trained 4608 entries per step" in outcome.stdout  # 2 layers x (256 + 128 + 128 + 256 + 3 x 512)


def test_every_config_field_is_documented():
    from losia_cl import LoSiAConfig

    for f in fields(LoSiAConfig):
        assert f"| `{f.name}` |" in README, f.name


def test_import_stays_light():
    code = "import losia_cl, losia_cl.streams, losia_cl.metrics, sys; print('avalanche' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"]


def test_every_subpackage_is_listed_in_pyproject():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"losia_cl." + ".".join(p.parent.relative_to(ROOT / "losia_cl").parts) if p.parent != ROOT / "losia_cl" else "losia_cl"
             for p in (ROOT / "losia_cl").rglob("__init__.py")}
    found |= {"losia_cl.streams", "losia_cl.metrics"}
    assert found == listed


def test_run_example_learns_and_forgets():
    """The smoke run shows something: for each method a task scores > 0 right after its training, then drops."""
    import json

    outcome = run_block(find_block("README.md", "The whole main job is callable too"))
    assert outcome.error is None, outcome.error
    for method in ("losia", "full"):
        scores = json.loads((outcome.cwd / "runs" / "readme-example" / method / "results.json").read_text())["scores"]
        diagonal = [scores[i + 1][i] for i in range(len(scores) - 1)]
        assert any(d > 0 for d in diagonal), (method, scores)
        assert any(scores[-1][i] < d for i, d in enumerate(diagonal[:-1])), (method, scores)  # forgotten
        assert f"{method} {scores}" in outcome.stdout


@pytest.mark.slow
def test_the_toml_example_learns_something(tmp_path):
    """`losia-cl run --config` on the README's TOML file: every method scores above 0 at the end (AP > 0)."""
    import json

    from losia_cl.cli import main

    config = tmp_path / "run.toml"
    config.write_text(find_block("README.md", "`--config run.toml` reads any", lang="toml").text)
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "--no-retention", "-q"]) == 0
    for method in ("losia", "full"):
        results = json.loads((tmp_path / "run" / method / "results.json").read_text())
        assert results["tasks"] == ["position", "check"]
        assert results["metrics"]["average_performance"] > 0, (method, results["scores"])
