"""The "how to read this" section: every formula the report uses, in plain text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .document import Formulas, Paragraph, Section

__all__ = ["SCORE_FORMULAS", "STAT_FORMULAS", "INTRO", "how_to_read_section"]

INTRO = (
    "S is the score matrix of a method: row 0 holds the base model's scores before any training, row i the scores "
    "on every task j after training tasks 1..i in order; S[i, j] is the score on task j after stage i, on a 0-1 "
    "scale (each task's own scorer, e.g. accuracy or ROUGE-L). T is the number of tasks. The diagonal S[j, j] "
    "(outlined in the heatmaps) is each task's score right after it was trained."
)

SCORE_FORMULAS = [
    ("average performance (AP)", "AP = (1/T) Σ_{j=1..T} S[T, j]",
     "mean score over all tasks after the last task (TRACE's overall performance, OP). Higher is better."),
    ("backward transfer (BWT)", "BWT = 1/(T−1) Σ_{j=1..T−1} (S[T, j] − S[j, j])",
     "how much later training changed earlier tasks; negative = forgetting (Lopez-Paz & Ranzato 2017). "
     "Higher is better."),
    ("forward transfer (FWT)", "FWT = 1/(T−1) Σ_{j=2..T} (S[j−1, j] − S[0, j])",
     "how much training the earlier tasks helped a task before it was trained, against the base model. "
     "Higher is better."),
    ("forgetting (F)", "F = 1/(T−1) Σ_{j=1..T−1} max_{j ≤ l < T} (S[l, j] − S[T, j])",
     "mean drop from each task's best earlier score to its final score (Chaudhry et al. 2018, \"Riemannian Walk "
     "for Incremental Learning\", ECCV). Lower is better."),
    ("learning accuracy (LA)", "LA = (1/T) Σ_{j=1..T} S[j, j]",
     "mean score of each task right after training it (plasticity). Higher is better."),
    ("identity", "AP = LA + (T−1)/T · BWT",
     "average performance splits into learning and backward transfer."),
    ("per-stage curves", "AP_i = (1/i) Σ_{j ≤ i} S[i, j]",
     "the forgetting curves plot S[i, j] for each task j against the stage i; the dotted line marks the stage "
     "where task j was trained."),
    ("costs", "trainable params; train time; peak memory",
     "parameters the method updates (share of all parameters in brackets), wall-clock training seconds over all "
     "tasks, peak accelerator memory in bytes (GiB = 2^30 bytes). Lower is better."),
]

STAT_FORMULAS = [
    ("mean ± 95% CI", "x̄ ± t_{0.975, n−1} · s / √n",
     "over n seeds, s = sample standard deviation (n − 1 in the denominator), t = Student t quantile."),
    ("paired t-test, Holm", "t = d̄ / (s_d / √n), d_k = a_k − b_k per seed; p_adj by Holm over all paired tests",
     "the seeds pair up (same model, data and order in a seed); † = the difference to the column's best is not "
     "significant after Holm's correction (p_adj ≥ 0.05). See Paired differences."),
    ("(floor), (ceiling)", "every input score of the metric at the scale's bound in every seed",
     "e.g. FWT = 0 when the exact-match scores before training are 0 for the base model and after the earlier "
     "tasks alike: the scale cannot show transfer there. Such cells are never marked best."),
]


def how_to_read_section(sections: Sequence[Section]) -> Section:
    """The last section: the score and statistics formulas, then the explanation of each section that has one."""
    blocks: list[Any] = [Paragraph(INTRO), Formulas(SCORE_FORMULAS + STAT_FORMULAS)]
    for section in sections:
        if section.explanation is not None:
            blocks.append(Paragraph(section.explanation.heading))
            blocks.append(Formulas(section.explanation.formulas))
    return Section("How to read this", "how-to-read", blocks)
