"""docs/metrics.md: the example runs, and every scorer and summary key it documents exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from losia_cl.metrics import scorer_names

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_example_runs(capsys) -> None:
    example = _python_blocks()[0]
    namespace: dict = {}
    exec(compile(example, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    m = namespace["m"]
    assert (m.average_performance, m.bwt, m.fwt, m.forgetting) == pytest.approx((0.75, -0.2, 0.2, 0.2))
    ratio = namespace["summary"]["coverage_jaccard_ratio"][0][1]
    assert 0.3 < ratio < 3.0  # random blocks overlap near chance
    assert capsys.readouterr().out.count("\n") == 3


def test_documented_names_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in scorer_names():
        assert f"| `{name}` |" in text
    for key in ("average_performance", "bwt", "fwt", "forgetting", "learning_accuracy",
                "subspace_left_*", "spectral_drift_*", "delta_effective_rank", "coverage_jaccard_chance"):
        assert f"`{key}`" in text
