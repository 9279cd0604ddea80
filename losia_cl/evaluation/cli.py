"""The ``losia-cl eval`` sub-command: one option per :class:`EvalConfig` field, lm-eval's names where they fit.

``--model``, ``--tasks``, ``--output-path``, ``--log-samples``, ``--limit``, ``--batch-size`` and
``--device`` are spelled as in lm-evaluation-harness; the stream options are those of ``losia-cl run``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any

from losia_cl.streams.mapping import unescape_template


def add_cli(subparsers: Any) -> None:
    """Register ``eval`` on ``subparsers``; its ``func`` takes the parsed namespace and returns the exit code."""
    from losia_cl.evaluation.config import EvalConfig

    p = subparsers.add_parser(
        "eval", help="score a model on a stream's test splits (writes eval.json)",
        description="Score one model (a built-in name, a Hugging Face id, a save_pretrained folder or a PEFT "
                    "adapter folder) on the test splits of a stream's tasks, with the scorers, batching, graded "
                    "log-likelihood and general probe of `losia-cl run`: the same settings give the scores of a "
                    "run's base row (base_scores.json). Writes OUTPUT/eval.json (docs/results-format.md) and, with "
                    "--log-samples, OUTPUT/predictions/<task>.jsonl. Bad input stops with one line and exit code 2 "
                    "before anything is written.",
    )
    helps = EvalConfig.field_help()
    defaults = {f.name: f.default for f in fields(EvalConfig)}

    def option(name: str, *flags: str, **kwargs: Any) -> None:
        text = kwargs.pop("help", helps[name])
        if defaults[name] is not None and kwargs.get("action") is None:
            text += f" (default: {defaults[name]})"
        p.add_argument(*(flags or ("--" + name.replace("_", "-"),)), dest=name, default=argparse.SUPPRESS,
                       help=text.replace("%", "%%"), **kwargs)

    option("model", metavar="MODEL")
    option("base_model", metavar="MODEL")
    option("stream", help=helps["stream"] + " Also a .json/.jsonl/.csv/.parquet data file (one task).")
    option("data_dir")
    option("tasks", help=helps["tasks"] + " Comma-separated.")
    option("prompt_template", type=unescape_template, metavar="TEMPLATE",
           help=helps["prompt_template"] + " \\n and \\t in it are a newline and a tab; a name without {} is a "
                                          "field.")
    option("answer_field", metavar="FIELD")
    option("labels", metavar="NAME,NAME,...", help=helps["labels"] + " Comma-separated.")
    option("limit", type=int, metavar="N")
    option("batch_size", type=int, metavar="N")
    option("max_length", type=int, metavar="N")
    option("chat_template", "--chat-template", action="store_true", help=helps["chat_template"])
    option("dtype", choices=("float32", "bfloat16"))
    option("device")
    option("seed", type=int)
    option("output_path", metavar="DIR")
    option("log_samples", "--log-samples", action="store_true", help=helps["log_samples"])
    option("probe", "--no-probe", action="store_false", help="Skip the general probe.")
    option("progress", "--no-progress", action="store_false",
           help="Hide progress bars (they show only on a terminal anyway; so does TQDM_DISABLE=1).")
    p.set_defaults(func=eval_command)


def eval_command(args: argparse.Namespace) -> int:
    from losia_cl.evaluation.config import EvalConfig

    names = {f.name for f in fields(EvalConfig)}
    options = {key: value for key, value in vars(args).items() if key in names}
    if getattr(args, "quiet", 0) > getattr(args, "verbose", 0):
        options["progress"] = False
    config = EvalConfig(**options)  # bad options stop here, before torch is imported

    from losia_cl.evaluation.run import describe, run_eval

    outcome = run_eval(config, command=["losia-cl", *getattr(args, "argv", sys.argv[1:])])
    sys.stdout.write("\n" + describe(outcome.results) + "\n")
    sys.stdout.write(f"\nresults: {outcome.path}\n")
    return 0
