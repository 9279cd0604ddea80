"""losia-cl inside Avalanche (avalanche-lib 0.6): benchmarks, a causal-LM strategy, plugin metrics.

::

    from avalanche.training.plugins import ReplayPlugin
    from losia_cl.avalanche import CausalLMStrategy, as_benchmark

    benchmark = as_benchmark(load_stream("demo"), tokenizer, max_length=256)
    strategy = CausalLMStrategy(model=model, tokenizer=tokenizer, method="losia",
                                plugins=[ReplayPlugin(mem_size=64)], eval_every=0)
    strategy.train(benchmark.train_stream, eval_streams=[benchmark.test_stream])
    strategy.score_matrix()   # (T+1) x T, as `losia-cl run` writes it

Importing this package imports Avalanche (``pip install 'losia-cl[avalanche]'``); importing
``losia_cl`` alone does not.  It holds back two Avalanche warnings a losia-cl user cannot act on, and
makes Avalanche's stock strategies refuse a LoSiA optimizer with one line pointing to
:class:`CausalLMStrategy` (:mod:`.stock`).  See ``docs/avalanche.md``.
"""

from __future__ import annotations

from losia_cl.avalanche.stock import guard_stock_strategies, quiet_import

try:
    with quiet_import():
        import avalanche as _avalanche
        import avalanche.training  # noqa: F401  (the qpsolvers warning comes from here)
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "losia_cl.avalanche needs avalanche-lib 0.6: pip install 'losia-cl[avalanche]'"
    ) from error

from losia_cl.avalanche.benchmark import TextEncoding, as_benchmark, collate_text_batch, experience_task
from losia_cl.avalanche.loggers import MetricsCSVLogger
from losia_cl.avalanche.metrics import (
    ExperienceScoreBWT,
    ExperienceScoreForgetting,
    ExperienceScoreForwardTransfer,
    ExperienceTaskScore,
    StabilityMetric,
    StreamScoreBWT,
    StreamScoreForgetting,
    StreamScoreForwardTransfer,
    StreamTaskScore,
    SubnetOverlapMetric,
    default_lm_evaluator,
    score_bwt_metrics,
    score_forgetting_metrics,
    score_forward_transfer_metrics,
    stability_metrics,
    subnet_overlap_metrics,
    task_score_metrics,
)
from losia_cl.avalanche.strategy import (
    REFUSED_PLUGINS,
    AnswerTokenLoss,
    CausalLMStrategy,
    IncompatiblePluginError,
    check_plugins,
)

guard_stock_strategies()

__all__ = [
    "REFUSED_PLUGINS",
    "AnswerTokenLoss",
    "CausalLMStrategy",
    "ExperienceScoreBWT",
    "ExperienceScoreForgetting",
    "ExperienceScoreForwardTransfer",
    "ExperienceTaskScore",
    "IncompatiblePluginError",
    "MetricsCSVLogger",
    "StabilityMetric",
    "StreamScoreBWT",
    "StreamScoreForgetting",
    "StreamScoreForwardTransfer",
    "StreamTaskScore",
    "SubnetOverlapMetric",
    "TextEncoding",
    "as_benchmark",
    "check_plugins",
    "collate_text_batch",
    "default_lm_evaluator",
    "experience_task",
    "score_bwt_metrics",
    "score_forgetting_metrics",
    "score_forward_transfer_metrics",
    "stability_metrics",
    "subnet_overlap_metrics",
    "task_score_metrics",
]

if not _avalanche.__version__.startswith("0.6"):  # pragma: no cover - depends on the environment
    import warnings

    warnings.warn(f"losia_cl.avalanche is built for avalanche-lib 0.6, found {_avalanche.__version__}", stacklevel=2)
