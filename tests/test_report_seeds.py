"""Several seeds of one setup: mean ± 95% t-interval per cell, daggers from Holm-adjusted paired tests, setup checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_report_data import METHODS, TASKS, parse_page, row_of, write_run

from losia_cl.errors import DataError
from losia_cl.report import build_report
from losia_cl.report.formatting import fmt_p, fmt_score
from losia_cl.report.tables import NS_MARK

KEYS = ("average_performance", "bwt", "fwt", "forgetting", "learning_accuracy")
LABELS = ("AP", "BWT", "FWT", "Forgetting", "LA")


def _ci(values: list[float]) -> tuple[float, float]:
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    return float(np.mean(values)), float(hi - np.mean(values))


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("seeds")
    runs = [write_run(root / f"seed{s}", seed=s) for s in (0, 1)]
    files = build_report(runs, out=root / "out" / "report.html")
    results = {m: [json.loads((r / m / "results.json").read_text()) for r in runs] for m in METHODS}
    return runs, files, results


def test_cells_are_mean_plus_minus_t_interval(two_seeds) -> None:
    _, files, results = two_seeds
    page = parse_page(files.html)
    comparison = page.table("Continual-learning metrics and costs per method")
    for method in METHODS:
        row = row_of(comparison, method)
        for col, key in enumerate(KEYS):
            mean, half = _ci([r["metrics"][key] for r in results[method]])
            assert row[col][0].rstrip(NS_MARK) == f"{fmt_score(mean)} ± {fmt_score(half)}", (method, key)
        scores = page.table(f"Score matrix of {method} (mean ± 95% CI over 2 seeds)")
        for i, label in enumerate(["base"] + [f"after {t}" for t in TASKS]):
            for j, (text, _) in enumerate(row_of(scores, label)):
                mean, half = _ci([r["scores"][i][j] for r in results[method]])
                assert text == f"{fmt_score(mean)} ± {fmt_score(half)}"


def _holm(pvalues: list[float]) -> list[float]:
    """Holm's adjusted p-values, written out: sort, multiply by m − k + 1, carry the running maximum, cap at 1."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def test_daggers_come_from_holm_adjusted_paired_t_tests(two_seeds) -> None:
    _, files, results = two_seeds
    page = parse_page(files.html)
    comparison = page.table("Continual-learning metrics and costs per method")
    notes = page.all_text
    assert "95% t-interval over seeds" in notes and "Welch" not in notes
    # the family: every pair of methods on every metric, paired seed by seed
    values = {(m, key): [r["metrics"][key] for r in results[m]] for m in METHODS for key in KEYS}
    family = [(key, a, b) for a, b in (("losia", "lora"), ("losia", "full"), ("lora", "full")) for key in KEYS]
    raw = [float(stats.ttest_rel(values[a, key], values[b, key]).pvalue) for key, a, b in family]
    adjusted = dict(zip(family, zip(raw, _holm(raw))))
    assert f"Holm-adjusted across the {len(family)} paired tests" in notes
    marked = 0
    for col, (key, label) in enumerate(zip(KEYS, LABELS)):
        pick = min if key == "forgetting" else max
        best = pick(METHODS, key=lambda m: np.mean(values[m, key]))
        for m in METHODS:
            text = row_of(comparison, m)[col][0]
            if m == best:
                assert not text.endswith(NS_MARK)
                continue
            p, p_adj = next(q for (k, a, b), q in adjusted.items() if k == key and {a, b} == {best, m})
            assert text.endswith(NS_MARK) == (p_adj >= 0.05), (label, m, p_adj)
            marked += p_adj >= 0.05
            if p_adj >= 0.05:
                assert f"{label}: not significantly different from the best, {best}, after Holm: " in notes
                assert f"{m} (p = {fmt_p(p)}, p_adj = {fmt_p(p_adj)})" in notes
    assert marked  # two seeds: some differences are not significant


def test_score_heatmaps_show_the_mean_and_figures_are_the_same_set(two_seeds) -> None:
    _, files, _ = two_seeds
    page = parse_page(files.html)
    assert len(page.images) == len(files.figures) == 8
    assert "mean over 2 seeds" in page.all_text


def test_method_missing_in_one_seed_is_reported_and_not_tested(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / "s0", seed=0, tasks=("a", "b")),
            write_run(tmp_path / "s1", seed=1, tasks=("a", "b"), unfinished=("lora",))]
    files = build_report(runs, out=tmp_path / "out" / "r.html")
    text = parse_page(files.html).all_text
    assert "Partial run: method(s) lora of " + str(tmp_path / "s1") in text
    assert "lora: 1 of 2" in text
    assert "cannot be tested (fewer than 2 paired seeds)" in text


def test_seeds_of_different_setups_are_refused(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", seed=0, tasks=("x", "y"))
    b = write_run(tmp_path / "b", seed=1, tasks=("y", "x"))
    with pytest.raises(DataError, match=r"tasks .* differs .*compare"):
        build_report([a, b], out=tmp_path / "o.html")
    assert not (tmp_path / "o.html").exists()
    with pytest.raises(DataError, match="given twice"):
        build_report([a, a], out=tmp_path / "o.html")


def test_t_interval_matches_scipy() -> None:
    from losia_cl.report.stats import summarize

    values = [0.61, 0.65, 0.7, 0.58]
    s = summarize(values)
    mean, half = _ci(values)
    assert s.n == 4 and math.isclose(s.mean, mean) and math.isclose(s.half_width, half)
    assert summarize([0.5]).half_width is None and summarize([None, None]).mean is None
