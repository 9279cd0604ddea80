"""docs/avalanche.md: its Python example runs and prints a score matrix; its refused-plugin table is complete."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("avalanche")

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "avalanche.md").read_text()


@pytest.mark.slow
def test_the_example_runs():
    block = re.search(r"## Example\n.*?```python\n(.*?)\n```", DOC, flags=re.S).group(1)
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[[0." in result.stdout and "StreamScoreBWT/eval_phase/test_stream" in result.stdout
    scores = ast.literal_eval(next(line for line in result.stdout.splitlines() if line.startswith("[[")))
    assert any(scores[i + 1][i] > 0 for i in range(len(scores) - 1)), scores  # a task is learned


def test_every_refused_plugin_is_documented():
    from losia_cl.avalanche import REFUSED_PLUGINS
    from losia_cl.avalanche.strategy import REFUSED_WITH_PRO

    table = DOC.split("**Refused**", 1)[1]
    for name in [*REFUSED_PLUGINS, *REFUSED_WITH_PRO]:
        if "NCM" in name or "FeCAM" in name:
            assert "NCM / FeCAM" in table
        else:
            assert f"`{name}`" in table, name
