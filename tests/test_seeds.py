"""run --seeds: every method under every seed, one folder per seed, and a report with CIs and paired tests."""

from __future__ import annotations

import json
import re

import pytest
from scipy import stats

from losia_cl.cli import main
from losia_cl.metrics import cl_metrics
from losia_cl.report.aggregate import ReportRuns
from losia_cl.report.formatting import fmt_p
from losia_cl.report.loading import load_runs
from losia_cl.report.sections.paired import paired_values
from losia_cl.metrics.paired import paired_difference


@pytest.mark.slow
def test_two_seeds_two_methods_write_per_seed_runs_and_a_paired_report(tmp_path, capsys):
    out = tmp_path / "seeds"
    argv = ["run", "--model", "tiny-llama", "--methods", "losia,lora", "--seeds", "0,1", "--tasks",
            "category,position", "--max-train-examples", "8", "--max-test-examples", "4", "--max-steps", "2",
            "--max-length", "64", "--lr", "1e-2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "seed 0:" in printed and "seed 1:" in printed
    assert json.loads((out / "seeds.json").read_text())["runs"] == ["seed0", "seed1"]
    per_seed = {}
    for seed in (0, 1):
        run = json.loads((out / f"seed{seed}" / "run.json").read_text())
        assert run["seed"] == seed and run["methods"] == ["losia", "lora"]
        for method in ("losia", "lora"):
            results = json.loads((out / f"seed{seed}" / method / "results.json").read_text())
            assert results["seed"] == seed and len(results["loglik_scores"]) == 3
            per_seed[seed, method] = cl_metrics(results["loglik_scores"], bounded=False).bwt
    report = (out / "report" / "report.md").read_text()
    assert "## Paired differences" in report and " ± " in report  # CIs over the two seeds
    assert "LoSiA forgets less than LoRA:" in report
    # the table's graded-BWT row holds scipy's paired t-test on the per-seed values
    a = [per_seed[0, "losia"], per_seed[1, "losia"]]
    b = [per_seed[0, "lora"], per_seed[1, "lora"]]
    reference = stats.ttest_rel(a, b)
    row = re.search(r"^\| LoSiA − LoRA: BWT \(log-lik\) \| (\S+) \|.*\| (-?\d+\.\d\d) \| ([^|]+) \| ([^|]+) \| 2 \|",
                    report, re.M)
    assert row, report
    mean, t, p, p_adj = (g.strip() for g in row.groups())
    assert float(p_adj.lstrip("< ")) >= float(p.lstrip("< "))  # Holm never lowers a p-value
    assert float(mean.replace("\u2212", "-")) == pytest.approx(sum(a) / 2 - sum(b) / 2, abs=5e-4)
    assert float(t) == pytest.approx(float(reference.statistic), abs=5e-3)
    assert p == fmt_p(float(reference.pvalue))
    # and the numbers behind it, at full precision
    groups = ReportRuns.of(load_runs([out])).groups
    xs, ys = paired_values(groups["losia"], groups["lora"], "loglik_bwt")
    assert xs == pytest.approx(a) and ys == pytest.approx(b)
    diff = paired_difference(xs, ys)
    assert diff.t == pytest.approx(float(reference.statistic)) and diff.p == pytest.approx(float(reference.pvalue))
    assert main(["report", str(out)]) == 0  # the root folder rebuilds the same aggregate report
    assert capsys.readouterr().out.strip() == str(out / "report" / "report.html")
