"""Number formatting, the random-chance coverage level and the figure helpers in isolation."""

from __future__ import annotations

import numpy as np
import pytest

from losia_cl.report.figures import chance_cumulative_coverage, method_colors
from losia_cl.report.formatting import fmt_bytes, fmt_count, fmt_p, fmt_score, fmt_seconds, fmt_stat


def test_number_formats() -> None:
    assert fmt_score(0.73449) == "0.734" and fmt_score(-0.00004) == "0.000" and fmt_score(None) == "—"
    assert fmt_score(float("nan")) == "—" and fmt_score(-0.1234) == "-0.123"
    assert fmt_count(1769472) == "1,769,472"
    assert fmt_seconds(12.34) == "12.3 s" and fmt_seconds(600) == "10.0 min" and fmt_seconds(9000) == "2.50 h"
    assert fmt_bytes(2.5 * 2**30) == "2.50 GiB" and fmt_bytes(512) == "512 B" and fmt_bytes(3 * 2**20) == "3.00 MiB"
    assert fmt_stat("score", 0.5, 0.0123) == "0.500 ± 0.012"
    assert fmt_stat("bytes", 2 * 2**30, 2**28) == "2.00 ± 0.25 GiB"
    assert fmt_stat("seconds", 30.0, 1.25) == "30.0 ± 1.2 s"
    assert fmt_p(0.3123) == "0.31" and fmt_p(0.004) == "0.004" and fmt_p(1e-5) == "< 0.001"


def test_chance_cumulative_coverage_matches_random_placement() -> None:
    rng = np.random.default_rng(0)
    n, sizes = 400, (60, 100, 40)
    unions = []
    for _ in range(2000):
        covered = np.zeros(n, dtype=bool)
        out = []
        for s in sizes:
            covered[rng.choice(n, s, replace=False)] = True
            out.append(covered.mean())
        unions.append(out)
    expected = chance_cumulative_coverage([[s / n for s in sizes]])
    assert np.allclose(np.mean(unions, axis=0), expected, atol=0.005)
    # a mean over matrices, and a task that trained nothing adds nothing
    assert chance_cumulative_coverage([[0.5, None], [0.1, 0.1]]) == pytest.approx([0.3, (0.5 + 0.19) / 2])


def test_method_colors_are_stable_and_distinct() -> None:
    colors = method_colors(["full", "losia", "mine", "yours"])
    assert colors["losia"] == method_colors(["losia"])["losia"]
    assert len(set(colors.values())) == 4
