"""The ``losia-cl`` command line: run, tune, streams, methods, models, report, compare, bench."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import fields
from typing import Any

from losia_cl.errors import ConfigError, LosiaError

logger = logging.getLogger("losia_cl")

EXIT_USAGE = 2


def _parse_lr(text: str) -> dict[str, float]:
    """``losia=1e-3,lora=2e-4`` -> dict (a bare number applies to every method: key '*')."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        try:
            out[name if sep else "*"] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--lr: {part!r} is not METHOD=NUMBER or NUMBER") from None
    return out


def _parse_seeds(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2] (distinct integers)."""
    try:
        seeds = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: {text!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds: {text!r} must list at least one seed, each once")
    return seeds


def _add_common_options(p: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``tune`` share: stream, model, methods, budget, learning rates, device."""
    from losia_cl.presets import PRESETS
    from losia_cl.trainer.config import RunConfig

    helps = RunConfig.field_help()
    defaults = {f.name: f.default for f in fields(RunConfig)}
    p.add_argument("--preset", default=None, choices=PRESETS.names(),
                   help="Start from a named set of options (explicit options still win): "
                        + "; ".join(f"{n}: {PRESETS.get(n).summary}" for n in PRESETS.names()))
    p.add_argument("--stream", default=defaults["stream"], help=helps["stream"])
    p.add_argument("--data-dir", default=None, help=helps["data_dir"])
    p.add_argument("--tasks", default=None, help=helps["tasks"] + " Comma-separated.")
    p.add_argument("--methods", default=",".join(defaults["methods"]), help=helps["methods"] + " Comma-separated.")
    p.add_argument("--model", default=defaults["model"], help=helps["model"])
    p.add_argument("--out", default=None, help=helps["out"])
    p.add_argument("--seed", type=int, default=defaults["seed"], help=helps["seed"])
    for name in ("epochs", "max_steps", "batch_size", "grad_accum", "max_length", "max_train_examples",
                 "max_test_examples", "eval_batch_size", "checkpoint_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name], help=helps[name])
    p.add_argument("--max-grad-norm", type=float, default=defaults["max_grad_norm"], help=helps["max_grad_norm"])
    p.add_argument("--lr", type=_parse_lr, default={}, help=helps["lr"] + " E.g. losia=1e-3,lora=5e-4, or one number.")
    p.add_argument("--no-shuffle", action="store_true", help="Train on each task's examples in file order.")
    p.add_argument("--chat-template", action="store_true", help=helps["chat_template"])
    p.add_argument("--dtype", default=defaults["dtype"], help=helps["dtype"])
    p.add_argument("--device", default=defaults["device"], help=helps["device"])
    p.add_argument("--resume", action="store_true", help=helps["resume"])
    p.add_argument("--no-progress", action="store_true", help="Hide progress bars.")


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    from losia_cl.trainer.config import RunConfig

    helps = RunConfig.field_help()
    p = sub.add_parser("run", help="train methods through a task stream and measure forgetting",
                       description="Train each method through the stream's tasks in order, score every task "
                                   "after every task, and compare forgetting. Without arguments: the embedded "
                                   "demo stream on the embedded SmolLM2-135M-Instruct with losia, lora, full.")
    _add_common_options(p)
    p.add_argument("--seeds", type=_parse_seeds, default=None,
                   help="Run every method under every seed (e.g. 0,1,2; paired: within a seed all methods see "
                        "the same data order), one sub-folder DIR/seed<N> each, and report them together "
                        "with mean ± 95%% CI and paired differences. Replaces --seed.")
    p.add_argument("--lr-from", default=None, metavar="TUNE.json", help=helps["lr_from"])
    p.add_argument("--no-retention", action="store_true", help="Skip the general-knowledge probe after every task.")
    p.add_argument("--no-report", action="store_true", help="Do not write the HTML report at the end.")
    p.set_defaults(func=_cmd_run)


def _add_tune_parser(sub: argparse._SubParsersAction) -> None:
    from losia_cl.tune.runner import DEFAULT_TUNE_TASKS

    p = sub.add_parser("tune", help="choose each method's learning rate on eval splits (writes tune.json)",
                       description="Train each method over a learning-rate grid through the stream's first "
                                   "tasks, score on the eval splits (never test), and pick per method the rate "
                                   "with the highest final AP (ties: the lower rate). Writes DIR/tune.json for "
                                   "`losia-cl run --lr-from DIR/tune.json`. Takes the options of `run`.")
    _add_common_options(p)
    p.add_argument("--grid", action="append", default=[], metavar="METHOD=LR,LR,...",
                   help="A method's learning rates (repeat for several methods); default: five values half a "
                        "decade apart, from a tenth of the method's default learning rate to ten times it.")
    p.add_argument("--tune-tasks", type=int, default=DEFAULT_TUNE_TASKS,
                   help="How many of the stream's first tasks to tune on (default %(default)s).")
    p.set_defaults(func=_cmd_tune)


def _config_from_args(args: argparse.Namespace, **changes: Any):
    from losia_cl.trainer.config import RunConfig

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    lr = dict(args.lr)
    if "*" in lr:
        value = lr.pop("*")
        lr = {**{m: value for m in methods}, **lr}
    options = dict(
        stream=args.stream, data_dir=args.data_dir, tasks=args.tasks, methods=methods, model=args.model,
        out=args.out, seed=args.seed, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        grad_accum=args.grad_accum, max_grad_norm=args.max_grad_norm, max_length=args.max_length,
        max_train_examples=args.max_train_examples, max_test_examples=args.max_test_examples,
        eval_batch_size=args.eval_batch_size, checkpoint_every=args.checkpoint_every, lr=lr,
        shuffle=not args.no_shuffle, chat_template=args.chat_template, dtype=args.dtype, device=args.device,
        resume=args.resume, progress=not args.no_progress,
    )
    options.update(changes)
    return RunConfig(**options)


def _cmd_run(args: argparse.Namespace) -> int:
    from losia_cl.trainer.experiment import run_experiment
    from losia_cl.trainer.seeds import run_seeds
    from losia_cl.trainer.summary import comparison_table

    config = _config_from_args(args, lr_from=args.lr_from, retention=not args.no_retention,
                               report=not args.no_report)
    command = ["losia-cl", *sys.argv[1:]]
    if args.seeds and len(args.seeds) > 1:
        outcomes = run_seeds(config, args.seeds, command=command)
        for seed, outcome in zip(args.seeds, outcomes):
            sys.stdout.write(f"\nseed {seed}:\n" + comparison_table(outcome.results) + "\n")
        root = outcomes[0].out_dir.parent
        sys.stdout.write(f"\nresults: {root}/seed<N>/<method>/results.json\n")
        _write_report([o.out_dir for o in outcomes], config.report, out=root / "report" / "report.html")
        return 0
    if args.seeds:
        config = _config_from_args(args, seed=args.seeds[0], lr_from=args.lr_from,
                                   retention=not args.no_retention, report=not args.no_report)
    outcome = run_experiment(config, command=command)
    sys.stdout.write("\n" + comparison_table(outcome.results) + "\n")
    sys.stdout.write(f"\nresults: {outcome.out_dir}/<method>/results.json (run: {outcome.out_dir}/run.json)\n")
    _write_report([outcome.out_dir], config.report)
    return 0


def _write_report(run_dirs: list, enabled: bool, out: Any = None) -> None:
    if not enabled:
        return
    try:
        from losia_cl.report import build_report

        files = build_report(run_dirs, out)
        sys.stdout.write(f"report:  {files.html}\n")
    except Exception as error:  # the results are safe on disk; the report can be rebuilt
        logger.warning("the report could not be written (%s); rebuild it with: losia-cl report %s",
                       error, " ".join(map(str, run_dirs)))


def _cmd_tune(args: argparse.Namespace) -> int:
    from losia_cl.tune.grid import parse_grid
    from losia_cl.tune.runner import describe, run_tune

    config = _config_from_args(args, report=False, retention=False)
    grid = parse_grid(args.grid, config.methods)
    outcome = run_tune(config, grid, tune_tasks=args.tune_tasks, command=["losia-cl", *sys.argv[1:]])
    sys.stdout.write("\n" + describe(outcome) + "\n")
    sys.stdout.write(f"\ntune:    {outcome.path}\nnext:    losia-cl run --lr-from {outcome.path} ...\n")
    return 0


def _cmd_streams(args: argparse.Namespace) -> int:
    from losia_cl.streams import describe_streams

    for name, description in describe_streams():
        sys.stdout.write(f"{name:12s} {description}\n")
    sys.stdout.write("{:12s} {}\n".format("PATH.toml", "a custom stream described by a TOML manifest"))
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from losia_cl.methods import METHODS

    for name in METHODS.names():
        doc = (METHODS.get(name).__doc__ or "").strip().splitlines()[0]
        sys.stdout.write(f"{name:10s} {doc}\n")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from losia_cl.models import model_names

    for name, description in model_names().items():
        sys.stdout.write(f"{name:14s} {description}\n")
    sys.stdout.write("{:14s} {}\n".format("ID or PATH", "any Hugging Face model id or local directory"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="losia-cl", description="Continual learning for language models with LoSiA.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(sub)
    _add_tune_parser(sub)
    sub.add_parser("streams", help="list the available task streams").set_defaults(func=_cmd_streams)
    sub.add_parser("methods", help="list the training methods").set_defaults(func=_cmd_methods)
    sub.add_parser("models", help="list the built-in models").set_defaults(func=_cmd_models)
    sub.add_parser("bench", help="training-step speed and memory of full FT, LoRA, LoSiA, LoSiA-Pro "
                                 "(losia-cl bench --help)")
    try:
        from losia_cl.report import add_cli
    except ImportError:  # pragma: no cover - the report package is part of the distribution
        pass
    else:
        add_cli(sub)
    return parser


def _apply_preset(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``--preset NAME`` sets the defaults of its sub-command before parsing, so explicit options still win."""
    from losia_cl.presets import PRESETS

    name = None
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--preset="):
            name = arg.split("=", 1)[1]
    command = next((a for a in argv if not a.startswith("-")), None)
    if name is None or name not in PRESETS or command not in ("run", "tune"):
        return  # argparse reports an unknown preset itself
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices[command].set_defaults(**PRESETS.get(name).defaults(command))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # its own parser takes every option after the word
        from losia_cl.bench import main as bench_main

        return bench_main(argv[1:])
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-v", "-vv", "--verbose"):
        argv = ["run", *argv]
    if argv and argv[0] in ("-v", "-vv", "--verbose") and (len(argv) == 1 or argv[1].startswith("-")):
        argv = [argv[0], "run", *argv[1:]]
    _apply_preset(parser, argv)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("transformers", "datasets", "peft", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if not args.verbose:  # deprecation notices of the libraries we drive are not the user's business
        warnings.filterwarnings("ignore", category=FutureWarning)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except (LosiaError, ConfigError) as error:
        sys.stderr.write(f"losia-cl: error: {error}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("losia-cl: interrupted; continue with --resume\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
