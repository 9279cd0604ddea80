"""Scoring a model on the test splits of a stream, where the trainer's modules and earlier code import it from
(:mod:`losia_cl.evaluator`)."""

from __future__ import annotations

from losia_cl.evaluator import (
    Evaluator,
    GenerationStats,
    TaskEvaluation,
    answer_logprob_sum,
    evaluate_task,
    score_task,
)

__all__ = ["Evaluator", "GenerationStats", "TaskEvaluation", "answer_logprob_sum", "evaluate_task", "score_task"]
