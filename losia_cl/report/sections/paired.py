"""The "Paired differences" section: LoSiA against every other method, seed by seed, with tests and a verdict.

Within a seed every method trains on the same data in the same order from the same model, so per-seed
results pair up; the differences carry the comparison (:mod:`losia_cl.metrics.paired`).  Shown when at
least two seeds ran a LoSiA-family method and another method.
"""

from __future__ import annotations

from typing import Any

from losia_cl.metrics.paired import ALPHA, RESAMPLES, PairedDifference, paired_difference, verdict

from ..aggregate import MethodRuns, ReportRuns
from ..document import Bullets, Explanation, Paragraph, Section, TableBlock
from ..formatting import fmt_p
from ..tables import Cell, Table
from ..writer import FigureWriter

ORDER = 25

#: (metric key, label, higher is better) compared for every pair.
METRICS = (
    ("average_performance", "AP", True),
    ("bwt", "BWT", True),
    ("forgetting", "Forgetting", False),
    ("loglik_bwt", "BWT (log-lik)", True),
    ("loglik_forgetting", "Forgetting (log-lik)", False),
)
LABELS = {"losia": "LoSiA", "losia-pro": "LoSiA-Pro", "lora": "LoRA", "dora": "DoRA", "pissa": "PiSSA",
          "full": "full FT"}


def label(method: str) -> str:
    return LABELS.get(method, method)


def method_pairs(methods: list[str]) -> list[tuple[str, str]]:
    """(LoSiA-family method, other method) for every combination present."""
    subjects = [m for m in methods if m.startswith("losia")]
    return [(a, b) for a in subjects for b in methods if not b.startswith("losia")]


def paired_values(a: MethodRuns, b: MethodRuns, key: str) -> tuple[list[float | None], list[float | None]]:
    """The values of ``key`` for the seeds both methods finished, in ``a``'s seed order."""
    by_seed = {s: r for s, r in zip(b.seeds, b.results)}
    pairs = [(r, by_seed[s]) for s, r in zip(a.seeds, a.results) if s in by_seed]
    return [x.metric(key) for x, _ in pairs], [y.metric(key) for _, y in pairs]


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}".replace("-", "\u2212")


def _interval(interval: tuple[float, float] | None) -> str:
    return "—" if interval is None else f"[{_signed(interval[0])}, {_signed(interval[1])}]"


def _row(diff: PairedDifference, higher_is_better: bool, a: str, b: str) -> list[Cell]:
    favours = "" if diff.mean is None or diff.mean == 0 else (label(a) if (diff.mean > 0) == higher_is_better
                                                               else label(b))
    return [
        Cell(_signed(diff.mean), best=diff.significant(ALPHA), title=f"per seed: {', '.join(map(_signed, diff.differences))}"),
        Cell(_interval(diff.ci)),
        Cell(_interval(diff.bootstrap_ci)),
        Cell("—" if diff.t is None else f"{diff.t:.2f}"),
        Cell("—" if diff.p is None else fmt_p(diff.p)),
        Cell(str(diff.n)),
        Cell(favours),
    ]


def section(runs: ReportRuns, writer: FigureWriter) -> Section | None:
    groups = runs.groups
    pairs = [(a, b) for a, b in method_pairs(list(groups)) if len(paired_values(groups[a], groups[b], "bwt")[0]) >= 2]
    if not pairs:
        return None
    rows: list[tuple[str, list[Cell]]] = []
    verdicts = []
    for a, b in pairs:
        for key, name, higher in METRICS:
            xs, ys = paired_values(groups[a], groups[b], key)
            diff = paired_difference(xs, ys)
            if diff.mean is None:
                continue
            rows.append((f"{label(a)} − {label(b)}: {name}", _row(diff, higher, a, b)))
            if key == "bwt":
                verdicts.append(verdict(f"{label(a)} forgets less than {label(b)}", diff, symbol="BWT",
                                        opposite=f"{label(a)} forgets more than {label(b)}"))
    table = Table(
        caption="Paired differences over seeds (LoSiA-family method minus the other method, seed by seed)",
        header=["Difference", "mean Δ", "95% CI (t)", "95% CI (bootstrap)", "t", "p", "seeds", "favours"],
        rows=rows, css="paired",
        notes=[f"Bold: the paired t-test rejects 'no difference' at α = {ALPHA}. 'favours' says which method the "
               "mean difference favours (higher AP and BWT, lower forgetting), whether significant or not."],
    )
    blocks: list[Any] = [
        Paragraph("Within a seed every method starts from the same model and trains on the same examples in the "
                  "same order, so the seeds pair up: each row tests the per-seed differences. Few seeds give wide "
                  "intervals; 'not significant' means the data cannot tell the methods apart, not that they are "
                  "equal."),
        TableBlock(table),
        Paragraph("Verdicts (backward transfer on the task scores; higher BWT = less forgetting):"),
        Bullets(verdicts),
    ]
    explanation = Explanation("Paired differences", [
        ("paired difference", "d_k = a_k − b_k, d̄ = (1/n) Σ_k d_k",
         "a_k, b_k: the two methods' values in seed k (only seeds both finished)."),
        ("95% CI (t)", "d̄ ± t_{0.975, n−1} · s_d / √n", "s_d: sample standard deviation of the d_k."),
        ("paired t-test", "t = d̄ / (s_d / √n), df = n − 1",
         f"two-sided (scipy.stats.ttest_rel); significant when p < {ALPHA}; undefined when every d_k is equal."),
        ("95% CI (bootstrap)", "2.5th and 97.5th percentiles of the means of n d_k drawn with replacement",
         f"{RESAMPLES:,} resamples, fixed seed."),
    ])
    return Section("Paired differences", "paired", blocks, explanation)
