"""The "Paired differences" section: every pair of methods on every metric, seed by seed, Holm-corrected.

Within a seed every method trains on the same data in the same order from the same model, so per-seed
results pair up; the differences carry the comparison (:mod:`losia_cl.metrics.paired`).  Every (pair,
metric) is one paired t-test; their p-values are adjusted together by Holm's procedure
(:mod:`losia_cl.metrics.holm`), and the comparison table's daggers read the same family
(:func:`~losia_cl.report.tables.report_family`).  Shown when at least two seeds ran two methods.
"""

from __future__ import annotations

from typing import Any

from losia_cl.metrics.paired import (ALPHA, BOOTSTRAP_MIN_SEEDS, POWER, RESAMPLES, detectable_effect_size, verdict,
                                     wilcoxon_min_n)

from ..aggregate import ReportRuns
from ..document import Bullets, Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_p
from ..significance import PairedFamily, PairedTest, method_pairs, paired_values
from ..tables import Cell, Table, report_family
from ..writer import FigureWriter

__all__ = ["ORDER", "LABELS", "label", "method_pairs", "paired_values", "section"]

ORDER = 25

LABELS = {"losia": "LoSiA", "losia-pro": "LoSiA-Pro", "lora": "LoRA", "dora": "DoRA", "pissa": "PiSSA",
          "full": "full FT"}
#: the metrics a verdict line is written for: (key, symbol, what the claim says).
VERDICTS = (("bwt", "BWT", "forgets less than"), ("loglik_bwt", "BWT(log-lik)", "forgets less (graded) than"))


def label(method: str) -> str:
    return LABELS.get(method, method)


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}".replace("-", "\u2212")


def _interval(interval: tuple[float, float] | None) -> str:
    return "—" if interval is None else f"[{_signed(interval[0])}, {_signed(interval[1])}]"


def _favours(test: PairedTest) -> str:
    a_bound, b_bound = test.bounds
    if a_bound is not None and a_bound == b_bound:
        return f"neither (both at the {a_bound})"
    favoured = test.favours
    return label(favoured) if favoured else "neither"


def _row(test: PairedTest, bootstrap: bool, wilcoxon: bool) -> list[Cell]:
    diff = test.difference
    cells = [
        Cell(_signed(diff.mean), best=test.significant(ALPHA),
             title=f"per seed: {', '.join(map(_signed, diff.differences))}"),
        Cell(_interval(diff.ci)),
    ]
    if bootstrap:
        cells.append(Cell(_interval(diff.bootstrap_ci)))
    cells += [
        Cell("—" if diff.t is None else f"{diff.t:.2f}"),
        Cell("—" if diff.p is None else fmt_p(diff.p)),
        Cell("—" if test.p_adjusted is None else fmt_p(test.p_adjusted)),
    ]
    if wilcoxon:
        cells.append(Cell("—" if diff.wilcoxon_p is None else fmt_p(diff.wilcoxon_p)))
    cells += [
        Cell(str(diff.n)),
        Cell("—" if diff.mde is None else f"{diff.mde:.3f}"),
        Cell(_favours(test)),
    ]
    return cells


def _detectable(family: PairedFamily) -> list[str]:
    """Per metric, the minimum detectable |Δ| of each pair (from its observed SD of the differences)."""
    lines = []
    labels = list(dict.fromkeys(t.label for t in family.tests))
    for name in labels:
        parts = [f"{t.difference.mde:.3f} ({label(t.a)} − {label(t.b)})" for t in family.tests
                 if t.label == name and t.difference.mde is not None]
        if not parts:
            continue
        seeds = sorted({t.difference.n for t in family.tests if t.label == name and t.difference.mde is not None})
        n = "/".join(map(str, seeds))
        lines.append(f"{name}: with {n} seeds this design detects |Δ{name}| ≥ " + ", ".join(parts))
    return lines


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    groups = runs.groups
    family = report_family(groups)
    if family.max_seeds < 2:
        return None
    bootstrap = any(t.difference.bootstrap_ci is not None for t in family.tests)
    wilcoxon = any(t.difference.wilcoxon_p is not None for t in family.tests)
    rows = [(f"{label(t.a)} − {label(t.b)}: {t.label}", _row(t, bootstrap, wilcoxon)) for t in family.tests]
    header = ["Difference", "mean Δ", "95% t-interval"]
    if bootstrap:
        header.append("95% bootstrap")
    header += ["t", "p", "p_adj (Holm)"]
    if wilcoxon:
        header.append("p (Wilcoxon)")
    header += ["seeds", f"MDE ({POWER:.0%} power)", "favours"]
    min_n = wilcoxon_min_n(ALPHA)
    notes = [
        f"Test: the paired t-test on the per-seed differences (two-sided); 'p' is its raw p-value, 'p_adj' the "
        f"same p after Holm's correction across all {family.size} tests of this table (the family of the "
        f"report). Bold: significant after Holm, p_adj < {ALPHA}.",
        "Interval: the 95% t-interval of the mean difference. "
        + ("A percentile bootstrap interval is given where a row has at least "
           f"{BOOTSTRAP_MIN_SEEDS} seeds." if bootstrap else
           f"No bootstrap interval: with fewer than {BOOTSTRAP_MIN_SEEDS} seeds a percentile bootstrap is no more "
           "than the spread of the few differences (with 3 seeds, exactly their range)."),
        (f"Wilcoxon signed-rank p (two-sided) is given beside the t-test where at least {min_n} differences are "
         "non-zero; it is not used for the marks." if wilcoxon else
         f"No Wilcoxon signed-rank test: with fewer than {min_n} non-zero differences its smallest possible "
         f"p-value (2/2ⁿ) is not below {ALPHA}, so it could never reject."),
        f"MDE: the smallest |Δ| the paired t-test would detect with {POWER:.0%} power at two-sided α = {ALPHA} "
        "(uncorrected), from the observed standard deviation of the differences and the number of seeds; "
        "larger after Holm's correction. '—' where every seed gives the same difference.",
        "'favours' names the method the mean difference favours (higher AP, BWT, FWT, LA and probe kept; lower "
        "forgetting and probe KL), significant or not; 'both at the floor' marks a metric whose every input "
        "sits at the bottom of its scale for both methods, so the seeds cannot compare them there.",
    ]
    table = Table(
        caption="Paired differences over seeds (first method minus second, seed by seed)",
        header=header, rows=rows, css="paired", notes=notes,
    )
    verdicts = []
    for a, b in method_pairs(list(groups)):
        for key, symbol, claim in VERDICTS:
            test = family.get(key, a, b)
            if test is None or test.a != a:
                continue
            verdicts.append(verdict(f"{label(a)} {claim} {label(b)}", test.difference, symbol=symbol,
                                    a=label(a), b=label(b), p_adjusted=test.p_adjusted))
    n_seeds = family.max_seeds
    blocks: list[Any] = [
        Paragraph("Within a seed every method starts from the same model and trains on the same examples in the "
                  "same order, so the seeds pair up: each row tests the per-seed differences of two methods. Every "
                  "pair of methods is compared on every metric, and the p-values are corrected together for the "
                  f"{family.size} tests. With {n_seeds} seeds the paired t-test detects (80% power) only "
                  f"differences of about {detectable_effect_size(n_seeds, alpha=ALPHA, power=POWER):.1f} standard "
                  "deviations of the per-seed differences; 'not significant' means the data cannot tell the methods "
                  "apart, not that they are equal."),
        TableBlock(table),
        Paragraph(f"What these seeds can detect (paired t-test, two-sided α = {ALPHA}, {POWER:.0%} power, before "
                  "correction, from each pair's observed standard deviation of the differences):"),
        Bullets(_detectable(family)),
    ]
    if verdicts:
        blocks += [Paragraph("Verdicts (backward transfer; higher BWT = less forgetting; significance after Holm):"),
                   Bullets(verdicts)]
    explanation = Explanation("Paired differences", [
        ("paired difference", "d_k = a_k − b_k, d̄ = (1/n) Σ_k d_k",
         "a_k, b_k: the two methods' values in seed k (only seeds both finished)."),
        ("95% t-interval", "d̄ ± t_{0.975, n−1} · s_d / √n", "s_d: sample standard deviation of the d_k."),
        ("paired t-test", "t = d̄ / (s_d / √n), df = n − 1",
         "two-sided (scipy.stats.ttest_rel); undefined when every d_k is equal."),
        ("Holm correction", "p_adj(i) = min(1, max_{k ≤ i} (m − k + 1) · p_(k))",
         f"over the m tests of the table sorted by p; significant when p_adj < {ALPHA} (family-wise error rate "
         f"≤ {ALPHA})."),
        ("Wilcoxon signed-rank", "W = Σ rank(|d_k|) over d_k > 0, exact two-sided p",
         f"scipy.stats.wilcoxon, zero differences dropped; only with ≥ {min_n} non-zero d_k."),
        ("minimum detectable effect", "MDE = λ* · s_d / √n, P(|T_{n−1, λ*}| > t_{0.975, n−1}) = 0.8",
         "T_{df, λ}: noncentral t (scipy.stats.nct); the |d̄| a paired t-test detects with 80% power."),
        ("95% bootstrap", "2.5th and 97.5th percentiles of the means of n d_k drawn with replacement",
         f"only from {BOOTSTRAP_MIN_SEEDS} seeds; {RESAMPLES:,} resamples, fixed seed."),
    ])
    return Section("Paired differences", "paired", blocks, explanation)
