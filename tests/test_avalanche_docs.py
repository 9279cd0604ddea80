"""docs/avalanche.md: its Python example runs and prints a score matrix; its refused-plugin table is complete."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from doc_blocks import find_block, run_block

pytest.importorskip("avalanche")

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "avalanche.md").read_text()


@pytest.mark.slow
def test_the_example_runs():
    outcome = run_block(find_block("docs/avalanche.md", "## Example"))
    assert outcome.error is None, outcome.error[-3000:]
    assert "[[0." in outcome.stdout and "StreamScoreBWT/eval_phase/test_stream" in outcome.stdout
    scores = ast.literal_eval(next(line for line in outcome.stdout.splitlines() if line.startswith("[[")))
    assert any(scores[i + 1][i] > 0 for i in range(len(scores) - 1)), scores  # a task is learned
    # Avalanche's qpsolvers and ReplayPlugin warnings are held back
    assert "QP solver" not in outcome.stderr and "Call to deprecated" not in outcome.stderr, outcome.stderr


def test_every_refused_plugin_is_documented():
    from losia_cl.avalanche import REFUSED_PLUGINS
    from losia_cl.avalanche.strategy import REFUSED_WITH_PRO

    table = DOC.split("**Refused**", 1)[1]
    for name in [*REFUSED_PLUGINS, *REFUSED_WITH_PRO]:
        if "NCM" in name or "FeCAM" in name:
            assert "NCM / FeCAM" in table
        else:
            assert f"`{name}`" in table, name
