"""The multi-seed report's statistics: every pair on every metric, Holm-adjusted, floors marked, effects sized.

Three seeds of three methods with graded scores and the general probe; exact-match scores are 0 before each
task is trained, so FWT sits at the floor of the scale.  Every number is checked against scipy on the values
written to the results files.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_report_data import METHODS, TASKS, parse_page, row_of, write_run

from losia_cl.errors import DataError
from losia_cl.metrics import cl_metrics
from losia_cl.report import build_report
from losia_cl.report.formatting import fmt_p, fmt_score
from losia_cl.report.tables import NS_MARK

SEEDS = (0, 1, 2)
PAIRS = (("losia", "lora"), ("losia", "full"), ("lora", "full"))
LABEL = {"losia": "LoSiA", "lora": "LoRA", "full": "full FT"}
#: (key, label, higher is better) of every tested column, in table order
METRICS = (("average_performance", "AP", True), ("bwt", "BWT", True), ("fwt", "FWT", True),
           ("forgetting", "Forgetting", False), ("learning_accuracy", "LA", True),
           ("loglik_bwt", "BWT (log-lik)", True), ("loglik_fwt", "FWT (log-lik)", True),
           ("loglik_forgetting", "Forgetting (log-lik)", False),
           ("retention_kl", "Probe KL", False), ("retention_kept", "Probe kept", True))
#: references of each task's test split (majority shares 3/5, 2/4, 2/3)
REFERENCES = {"category": ["A", "B", "A", "C", " A"], "position": ["7", "12", "12", "7"], "successor": ["x", "y", "x"]}


def _value(results: dict, key: str) -> float:
    if key.startswith("loglik_"):
        return cl_metrics(results["loglik_scores"], bounded=False).to_dict()[key[len("loglik_"):]]
    if key.startswith("retention_"):
        return results["retention"][key[len("retention_"):]][-1]
    return results["metrics"][key]


def _holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _power(effect: float, sd: float, n: int) -> float:
    crit = stats.t.ppf(0.975, n - 1)
    nc = effect * math.sqrt(n) / sd
    return float(stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc))


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stats")
    values: dict[tuple[str, str], list[float]] = {}
    for seed in SEEDS:
        run = write_run(root / f"seed{seed}", seed=seed)
        rng = np.random.default_rng(100 + seed)
        for method in METHODS:
            path = run / method / "results.json"
            results = json.loads(path.read_text())
            s = np.array(results["scores"])
            s[np.triu_indices(len(TASKS))] = 0.0  # row i < task j + 1: nothing right before training
            results["scores"] = s.tolist()
            results["metrics"] = cl_metrics(s).to_dict()
            loglik = -rng.uniform(0.5, 6.0, size=(len(TASKS) + 1, len(TASKS)))
            results["loglik_scores"] = loglik.tolist()
            kept = [1.0] * 4 if method == "losia" else [1.0, *np.round(rng.uniform(0.6, 0.99, 3), 3).tolist()]
            results["retention"] = {"kl": [0.0, *np.round(rng.uniform(0.01, 0.5, 3), 4).tolist()], "kept": kept,
                                    "items": 20, "base_right": 10}
            path.write_text(json.dumps(results))
            for key, _, _ in METRICS:
                values.setdefault((method, key), []).append(_value(results, key))
        folder = run / "base" / "predictions"
        folder.mkdir(parents=True)
        for task, refs in REFERENCES.items():
            lines = [json.dumps({"index": i, "prompt": "p", "prediction": "", "reference": r, "score": 0.0})
                     for i, r in enumerate(refs)]
            (folder / f"stage0-{task}.jsonl").write_text("\n".join(lines) + "\n")
    files = build_report([root / f"seed{s}" for s in SEEDS], out=root / "out" / "report.html")
    return parse_page(files.html), files.html.with_suffix(".md").read_text(), values


def _family(values):
    """(pair, metric) -> (mean difference, raw p, Holm p) over the tests with a defined p."""
    tests, raw = [], []
    for a, b in PAIRS:
        for key, label, _ in METRICS:
            d = np.subtract(values[a, key], values[b, key])
            if np.std(d) > 0:
                tests.append((a, b, key, label, d))
                raw.append(float(stats.ttest_rel(values[a, key], values[b, key]).pvalue))
    return {(a, b, key): (label, d, p, q) for (a, b, key, label, d), p, q in zip(tests, raw, _holm(raw))}


def test_every_pair_on_every_metric_with_raw_and_holm_adjusted_p(report) -> None:
    page, _, values = report
    table = page.table("Paired differences over seeds")
    header = [text for text, _ in table["rows"][0]]
    assert header == ["Difference", "mean Δ", "95% t-interval", "t", "p", "p_adj (Holm)", "seeds",
                      "MDE (80% power)", "favours"]  # 3 seeds: no bootstrap column, no Wilcoxon column
    family = _family(values)
    assert len(family) == 27  # 3 pairs x 10 metrics, less FWT: equal (zero) differences in every seed
    assert len(table["rows"]) - 1 == 30
    for a, b in PAIRS:
        for key, label, higher in METRICS:
            row = row_of(table, f"{LABEL[a]} − {LABEL[b]}: {label}")
            d = np.subtract(values[a, key], values[b, key])
            assert _number(row[0][0]) == pytest.approx(d.mean(), abs=5e-4)
            assert row[5][0] == "3"
            if (a, b, key) not in family:
                assert key == "fwt" and row[3][0] == row[4][0] == "—" and row[7][0] == "neither (both at the floor)"
                continue
            _, _, p, q = family[a, b, key]
            assert (row[3][0], row[4][0]) == (fmt_p(p), fmt_p(q))
            low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
            assert row[1][0] == f"[{low:+.3f}, {high:+.3f}]".replace("-", "\u2212")
            assert _power(_number(row[6][0]), float(np.std(d, ddof=1)), 3) == pytest.approx(0.8, abs=0.01)
            favoured = a if (d.mean() > 0) == higher else b
            assert row[7][0] == LABEL[favoured]
            assert ("best" in row[0][1]) == (q < 0.05)
    text = page.all_text
    assert "across all 27 tests of this table" in text
    assert "No bootstrap interval: with fewer than 10 seeds" in text
    assert "No Wilcoxon signed-rank test: with fewer than 6 non-zero differences" in text


def test_verdicts_name_the_favoured_method_and_holm(report) -> None:
    _, markdown, values = report
    family = _family(values)
    for a, b in PAIRS:
        _, d, p, q = family[a, b, "bwt"]
        favoured = LABEL[a] if d.mean() > 0 else LABEL[b]
        line = next(x for x in markdown.splitlines() if x.startswith(f"- {LABEL[a]} forgets less than {LABEL[b]}:"))
        answer = "not shown" if q >= 0.05 else ("yes" if d.mean() > 0 else "no")
        assert line.startswith(f"- {LABEL[a]} forgets less than {LABEL[b]}: {answer}; the estimate favours {favoured} ")
        assert f"p = {p:.3g}, p_adj = {q:.3g}" in line
        mde = float(re.search(r"with 3 seeds this design detects \\\|ΔBWT\\\| ≥ (\d\.\d+)", line).group(1))
        assert _power(mde, float(np.std(d, ddof=1)), 3) == pytest.approx(0.8, abs=0.01)
        assert f"{mde:.3f} ({LABEL[a]} − {LABEL[b]})" in markdown  # the per-metric detectable-effect lines
    assert sum(x.startswith("- ") and "forgets less (graded) than" in x for x in markdown.splitlines()) == 3


def test_comparison_marks_floors_and_daggers_from_the_same_family(report) -> None:
    page, _, values = report
    table = page.table("Continual-learning metrics and costs per method")
    header = [text for text, _ in table["rows"][0]][1:]
    family = _family(values)
    for col, (key, label, higher) in enumerate(METRICS):
        assert header[col] == label
        cells = {m: row_of(table, m)[col] for m in METHODS}
        if key == "fwt":
            assert all(text.endswith("(floor)") and "best" not in css for text, css in cells.values())
            continue
        means = {m: float(np.mean(values[m, key])) for m in METHODS}
        best = (max if higher else min)(means, key=means.get)
        if key == "retention_kept":  # LoSiA kept every right answer in every seed: best, but at the ceiling
            assert best == "losia" and cells[best][0] == "1.000 ± 0.000 (ceiling)"
            assert not any("best" in css for _, css in cells.values())
        else:
            assert "best" in cells[best][1]
        for m in means:
            if m == best:
                continue
            q = next(v[3] for (a, b, k), v in family.items() if k == key and {a, b} == {m, best})
            assert cells[m][0].endswith(NS_MARK) == (q >= 0.05), (label, m)


def test_graded_fwt_and_majority_baselines(report) -> None:
    page, _, values = report
    table = page.table("Forward transfer per task")
    shares = {task: max(sum(r.strip() == a.strip() for r in refs) for a in refs) / len(refs)
              for task, refs in REFERENCES.items()}
    majority = {"category": "A", "position": "12", "successor": "x"}  # "7" and "12" tie: the first in sorted order
    for task in TASKS:
        assert row_of(table, task)[0][0] == f"{fmt_score(shares[task])} ({majority[task]!r})"
    # graded FWT of the last task for LoSiA: L[T−1, T] − L[0, T] over seeds
    comparison = page.table("Continual-learning metrics and costs per method")
    fwt = [v for v in values["losia", "loglik_fwt"]]
    mean, (low, high) = np.mean(fwt), stats.t.interval(0.95, 2, loc=np.mean(fwt), scale=stats.sem(fwt))
    assert row_of(comparison, "losia")[6][0].rstrip(NS_MARK) == f"{fmt_score(mean)} ± {fmt_score(high - mean)}"


def test_a_malformed_prediction_file_is_named_with_its_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", seed=0)
    (run / "losia" / "results.json").write_text(json.dumps({
        **json.loads((run / "losia" / "results.json").read_text()),
        "loglik_scores": (-np.ones((len(TASKS) + 1, len(TASKS)))).tolist()}))
    bad = run / "losia" / "predictions" / f"stage1-{TASKS[0]}.jsonl"
    bad.write_text('{"reference": "A"}\n{"reference": 3}\n')
    with pytest.raises(DataError, match=re.escape(f"{bad}:2: key 'reference'")):
        build_report([run], out=tmp_path / "out" / "r.html")


def test_references_and_predictions_with_unicode_line_separators_are_one_record_each(tmp_path: Path) -> None:
    from losia_cl.report.references import read_references

    # generated text may hold U+0085, U+2028 or a form feed; JSON Lines ends a record only at "\n"
    path = tmp_path / "p.jsonl"
    records = [{"reference": "a\x85b", "prediction": "x\u2028y"}, {"reference": "c\x0cd", "prediction": ""}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert read_references(path) == ["a\x85b", "c\x0cd"]
