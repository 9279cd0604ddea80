"""The ``losia-cl`` command line: run, tune, eval, streams, methods, models, report, compare, bench.

``losia-cl`` without a command prints the help on stderr and exits 2 (a command is required);
``losia-cl --help`` prints it on stdout and exits 0.  ``-q``/``-v`` work before or after the
command; every ``--help`` shows the defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from dataclasses import fields
from typing import Any

from losia_cl.errors import ConfigError, LosiaError
from losia_cl.help_formatter import EXIT_USAGE, CommandParser

logger = logging.getLogger("losia_cl")
#: Third-party loggers kept at WARNING unless -vv.
NOISY_LIBRARIES = ("transformers", "datasets", "peft", "urllib3", "filelock", "huggingface_hub", "fsspec", "accelerate",
                   "avalanche", "torch.distributed")


def _verbosity_options() -> argparse.ArgumentParser:
    """-v/-q for the top-level parser and every command; SUPPRESS lets a command's absence keep the top's."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more output: -v debug messages and library warnings, -vv also the libraries' "
                             "own logs")
    common.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS,
                        help="less output: -q warnings and errors only, no progress bars; -qq errors only")
    return common


_COMMON = _verbosity_options()


class _Parser(CommandParser):
    """Every losia-cl parser: defaults in --help, one-line usage errors and the -v/-q options (sub-commands inherit
    all three)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parents", [_COMMON])
        super().__init__(*args, **kwargs)


def _parse_lr(text: str) -> dict[str, float]:
    """``losia=1e-3,lora=2e-4`` -> dict (a bare number applies to every method: key '*'); a key given twice
    is an error (never silently the last one)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        key = name.strip() if sep else "*"
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not METHOD=NUMBER or NUMBER") from None
        if key in out:
            what = "a bare learning rate" if key == "*" else f"a learning rate for {key!r}"
            raise argparse.ArgumentTypeError(f"{text!r} gives {what} twice")
        out[key] = number
    return out


def _parse_method_option(text: str) -> tuple[str, str, object]:
    """``METHOD.key=value`` -> (method, key, value); the value is read as JSON when it parses, else as text."""
    import json

    target, sep, raw = text.partition("=")
    method, dot, key = target.strip().partition(".")
    if not (sep and dot and method and key):
        raise argparse.ArgumentTypeError(f"--method-option: {text!r} is not METHOD.key=value")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON (or JSON nested too deeply, numbers too long): text
        value = raw
    return method, key.strip(), value


def _shown(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def _parse_seeds(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2] (distinct integers)."""
    try:
        seeds = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} must list at least one seed, each once")
    return seeds


def _add_mapping_options(option: Any, helps: dict[str, str]) -> None:
    """--prompt-template, --answer-field, --labels: where a single data file's prompt and answer are."""
    from losia_cl.streams.mapping import unescape_template

    option("prompt_template", type=unescape_template, metavar="TEMPLATE",
           help=helps["prompt_template"] + " \\n and \\t in it are a newline and a tab; a name without {} is "
                                          "a field.")
    option("answer_field", metavar="FIELD")
    option("labels", metavar="NAME,NAME,...", help=helps["labels"] + " Comma-separated.")


def _add_run_options(p: argparse.ArgumentParser, run_only: bool) -> None:
    """One option per RunConfig field (``run_only``: also those only ``run`` takes).  Options default to
    SUPPRESS so that the namespace holds exactly what the command line gave (it overrides --config, which
    overrides --preset); the help states RunConfig's defaults."""
    from losia_cl.presets import PRESETS
    from losia_cl.trainer.config import INT_RANGES, RunConfig

    helps = {key: text + (f" Range {INT_RANGES[key][0]} to {INT_RANGES[key][1]:,}." if key in INT_RANGES else "")
             for key, text in RunConfig.field_help().items()}
    defaults = {f.name: f.default for f in fields(RunConfig)}

    def option(name: str, *flags: str, **kwargs: Any) -> None:
        text = kwargs.pop("help", helps[name])
        if defaults[name] is not None and "(default" not in text and kwargs.get("action") is None:
            text += f" (default: {_shown(defaults[name])})"
        p.add_argument(*(flags or ("--" + name.replace("_", "-"),)), dest=name, default=argparse.SUPPRESS,
                       help=text.replace("%", "%%"), **kwargs)

    p.add_argument("--preset", default=None, choices=PRESETS.names(),
                   help="Start from a named set of options (docs/fair-comparison.md); --config and the command "
                        "line override it. " + "; ".join(f"{n}: {PRESETS.get(n).summary}" for n in PRESETS.names()))
    p.add_argument("--config", metavar="RUN.toml", default=None,
                   help="Read run options from a TOML file (keys: the option names); options given on the "
                        "command line override it.")
    option("stream", help=helps["stream"] + " Also a .json/.jsonl/.csv/.parquet data file (one task).")
    option("data_dir")
    option("tasks", help=helps["tasks"] + " Comma-separated.")
    _add_mapping_options(option, helps)
    option("methods", help=helps["methods"] + " Comma-separated.")
    option("model")
    option("out")
    option("seed", type=int)
    for name in ("epochs", "max_steps", "batch_size", "grad_accum", "max_length", "max_train_examples",
                 "max_test_examples", "eval_batch_size", "checkpoint_every"):
        option(name, type=int)
    option("max_grad_norm", type=float)
    option("lr", type=_parse_lr,
           help=helps["lr"] + " E.g. losia=1e-3,lora=5e-4, or one number for all; each in (0, 1].")
    option("method_options", "--method-option", type=_parse_method_option, action="append",
           metavar="METHOD.KEY=VALUE",
           help="A method option (repeatable), e.g. lora.rank=8, lora.per_task=true, "
                "losia.losia_options='{\"schedule\": \"sync\"}'; VALUE is read as JSON, else as text. "
                "`losia-cl methods --options` lists every method's options.")
    option("replay", type=float, metavar="SHARE")
    option("replay_buffer", type=int, metavar="N")
    option("shuffle", "--no-shuffle", action="store_false",
           help="Train on each task's examples in file order (default: a seeded shuffle every epoch).")
    option("chat_template", "--chat-template", action="store_true", help=helps["chat_template"])
    option("dtype")
    option("device")
    if run_only:
        p.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="Train data-parallel in N processes of this machine: starts torchrun "
                            "(docs/distributed.md).")
    option("dist_backend")
    option("resume", "--resume", action="store_true", help=helps["resume"])
    option("progress", "--no-progress", action="store_false",
           help="Hide progress bars (they show only on a terminal anyway; so does TQDM_DISABLE=1).")
    if run_only:
        option("lr_from", metavar="TUNE.json")
        option("retention", "--no-retention", action="store_false",
               help="Skip the general-knowledge probe (run on the base model and after the last task).")
        option("stability", "--stability", action="store_true", help=helps["stability"])
        option("measure_every_task", "--measure-every-task", action="store_true", help=helps["measure_every_task"])
        option("report", "--no-report", action="store_false", help="Do not write the HTML report at the end.")
        option("tensorboard", "--tensorboard", action="store_true",
               help=helps["tensorboard"] + " See docs/results-format.md.")
        option("wandb", "--wandb", action="store_true",
               help=helps["wandb"] + " See docs/results-format.md.")
        option("save_models", "--no-save", action="store_false",
               help="Save no trained model (default: each method's latest model in OUT/<method>/model/, "
                    "docs/saved-models.md).")
        option("save_every_task", "--save-every-task", action="store_true",
               help="Keep every task's trained model, in OUT/<method>/models/<i>-<task>/.")
        option("from_run", "--from", metavar="RUN_DIR",
               help=helps["from_run"] + " --tasks names the new tasks; --model, --dtype and --methods must be "
                                        "the run's.")
        p.add_argument("--seeds", type=_parse_seeds, default=argparse.SUPPRESS,
                       help="Run every method under every seed (e.g. 0,1,2), one run folder OUT/seed<N> each; within "
                            "a seed all methods see the same data in the same order (paired). The report gives "
                            "mean ± 95%% CI and paired differences with tests. Replaces --seed.")


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train methods through a task stream and measure forgetting",
                       description="Train each method through the stream's tasks in order, score every task "
                                   "after every task, and compare forgetting. Without options: the embedded "
                                   "demo stream on the embedded SmolLM2-135M-Instruct with losia, lora, full.")
    _add_run_options(p, run_only=True)
    p.set_defaults(func=_cmd_run)


def _add_tune_parser(sub: argparse._SubParsersAction) -> None:
    from losia_cl.tune.grid import MAX_EXTENSIONS
    from losia_cl.tune.runner import DEFAULT_TUNE_SEEDS, DEFAULT_TUNE_TASKS
    from losia_cl.tune.select import TOLERANCE

    p = sub.add_parser("tune", help="choose each method's learning rate on eval splits (writes tune.json)",
                       description="Train each method over a learning-rate grid through the stream's first "
                                   "tasks under several seeds, score on the eval splits (never test), and pick per "
                                   "method the rate with the highest seed-averaged learning accuracy on eval (rates "
                                   f"within {TOLERANCE:g} of the best: the lowest of them). The grid grows half a "
                                   "decade beyond an edge while the choice lies there. Writes OUT/tune.json for "
                                   "`losia-cl run --lr-from OUT/tune.json`. Takes the options of `run` "
                                   "(docs/fair-comparison.md).")
    _add_run_options(p, run_only=False)
    p.add_argument("--grid", action="append", default=[], metavar="METHOD=LR,LR,...",
                   help="A method's learning rates, each in (0, 1] (repeat for several methods); default: five "
                        "values half a decade apart, from a tenth of the method's default learning rate to ten "
                        "times it.")
    p.add_argument("--tune-tasks", type=int, default=argparse.SUPPRESS,
                   help=f"How many of the stream's first tasks to tune on (default: {DEFAULT_TUNE_TASKS}).")
    p.add_argument("--tune-seeds", type=_parse_seeds, default=argparse.SUPPRESS,
                   help="Seeds every grid point is trained under, its scores averaged (e.g. 0,1; default: "
                        f"{DEFAULT_TUNE_SEEDS} seeds, --seed and the next).")
    p.add_argument("--max-extensions", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="Rates added beyond each edge of the grid while the chosen rate lies on it, at most N per "
                        f"side (0: never; default: {MAX_EXTENSIONS}).")
    p.set_defaults(func=_cmd_tune)


def _run_options(args: argparse.Namespace, command: str = "run") -> dict[str, Any]:
    """RunConfig keywords: the preset's values, replaced by the --config file's, replaced by those given on
    the command line."""
    from losia_cl.presets import PRESETS
    from losia_cl.trainer.config import RunConfig
    from losia_cl.trainer.run_file import read_run_file

    names = {f.name for f in fields(RunConfig)}
    preset = getattr(args, "preset", None)
    values = {k: v for k, v in PRESETS.get(preset).defaults(command).items() if k in names} if preset else {}
    if getattr(args, "config", None):
        values.update(read_run_file(args.config))
    given = {k: v for k, v in vars(args).items() if k in names}
    pairs = given.pop("method_options", [])
    values.update(given)
    if pairs:  # --method-option METHOD.KEY=VALUE, over the file's method_options
        options = {method: dict(o) for method, o in (values.get("method_options") or {}).items()}
        for method, key, value in pairs:
            options.setdefault(method, {})[key] = value
        values["method_options"] = options
    if _verbosity(args) < 0:
        values["progress"] = False
    lr = dict(values.get("lr") or {})
    if "*" in lr:
        methods = RunConfig.__dataclass_fields__["methods"].default
        chosen = values.get("methods", methods)
        if isinstance(chosen, str):
            chosen = tuple(m.strip() for m in chosen.split(",") if m.strip())
        rate = lr.pop("*")
        values["lr"] = {**{m: rate for m in chosen}, **lr}
    return values


def _preset_value(args: argparse.Namespace, command: str, key: str, default: Any) -> Any:
    """An option that is not a RunConfig field: the command line's, else the preset's, else ``default``."""
    from losia_cl.presets import PRESETS

    if key in vars(args):
        return getattr(args, key)
    preset = getattr(args, "preset", None)
    return PRESETS.get(preset).defaults(command).get(key, default) if preset else default


def _cmd_run(args: argparse.Namespace) -> int:
    from losia_cl.trainer.config import RunConfig

    config = RunConfig(**_run_options(args))  # bad options stop here, before torch is imported

    from losia_cl.trainer.experiment import run_experiment
    from losia_cl.trainer.seeds import run_seeds
    from losia_cl.trainer.summary import comparison_table, time_table

    if args.nproc != 1:
        return _launch(config, args)
    command = ["losia-cl", *sys.argv[1:]]
    seeds = None if "seed" in vars(args) and "seeds" not in vars(args) else _preset_value(args, "run", "seeds", None)
    if seeds and len(seeds) > 1:
        outcomes = run_seeds(config, seeds, command=command)
        for seed, outcome in zip(seeds, outcomes):
            sys.stdout.write(f"\nseed {seed}:\n" + comparison_table(outcome.results) + "\n")
        root = outcomes[0].out_dir.parent
        sys.stdout.write(f"\nresults: {root}/seed<N>/<method>/results.json (seeds: {root}/seeds.json)\n")
        return _write_report(root, config.report)
    if seeds:
        config = RunConfig(**{**_run_options(args), "seed": seeds[0]})
    outcome = run_experiment(config, command=command)
    if outcome.rank != 0:  # under torchrun rank 0 prints for every rank
        return 0
    sys.stdout.write("\n" + comparison_table(outcome.results) + "\n")
    times = time_table(outcome.results, outcome.timings)
    if times:
        sys.stdout.write("\n" + times + "\n")
    sys.stdout.write(f"\nresults: {outcome.out_dir}/<method>/results.json (run: {outcome.out_dir}/run.json)\n")
    return _write_report(outcome.out_dir, config.report)


def _write_report(run_dir: Any, enabled: bool) -> int:
    """The exit code after the report: 2 with one line when it cannot be written (a full disk, a link leading out of
    the run folder); an unexpected failure of the report is a warning, the results being safe on disk."""
    if not enabled:
        return 0
    try:
        from losia_cl.report import build_report

        files = build_report([run_dir])
        sys.stdout.write(f"report:  {files.html}\n")
    except LosiaError as error:
        sys.stderr.write(f"losia-cl: error: {error}; the results are kept, write the report with: "
                         f"losia-cl report {run_dir}\n")
        return EXIT_USAGE
    except Exception as error:  # the results are safe on disk; the report can be rebuilt
        logger.warning("the report could not be written (%s); rebuild it with: losia-cl report %s", error, run_dir)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from losia_cl.trainer.config import RunConfig
    from losia_cl.tune.grid import MAX_EXTENSIONS, parse_grid
    from losia_cl.tune.runner import DEFAULT_TUNE_TASKS, describe, run_tune

    config = RunConfig(**{**_run_options(args, "tune"), "report": False, "retention": False, "tensorboard": False,
                             "wandb": False})
    grid = parse_grid(args.grid, config.methods)
    outcome = run_tune(config, grid, tune_tasks=_preset_value(args, "tune", "tune_tasks", DEFAULT_TUNE_TASKS),
                       tune_seeds=_preset_value(args, "tune", "tune_seeds", None),
                       max_extensions=_preset_value(args, "tune", "max_extensions", MAX_EXTENSIONS),
                       command=["losia-cl", *sys.argv[1:]])
    sys.stdout.write("\n" + describe(outcome) + "\n")
    sys.stdout.write(f"\ntune:    {outcome.path}\nnext:    losia-cl run --lr-from {outcome.path} ...\n")
    return 0


def _launch(config: Any, args: argparse.Namespace) -> int:
    """``--nproc N``: check what can be checked here (one-line errors), then start torchrun."""
    from losia_cl.distributed.context import env_world_size
    from losia_cl.distributed.launch import launch
    from losia_cl.trainer.experiment import check_run_folder, load_run_stream

    if args.nproc < 1:
        raise ConfigError(f"nproc = {args.nproc} is invalid: it must be an integer >= 1")
    if env_world_size() > 1:
        raise ConfigError("--nproc starts torchrun itself: leave it out when running under torchrun")
    stream = load_run_stream(config)
    if config.from_run:
        from losia_cl.trainer.continuation import read_continuation

        read_continuation(config, stream, load_run_stream)
    check_run_folder(config, args.nproc)
    return launch(args.nproc, args.argv)


def _cmd_streams(args: argparse.Namespace) -> int:
    from losia_cl.streams import describe_streams

    for name, description in describe_streams():
        sys.stdout.write(f"{name:12s} {description}\n")
    sys.stdout.write("{:12s} {}\n".format("PATH.toml", "a custom stream described by a TOML manifest"))
    sys.stdout.write("{:12s} {}\n".format("DATA FILE", "one task from a .json/.jsonl/.csv/.parquet file"))
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    import json

    from losia_cl.methods import METHODS, option_defaults, option_help

    for name in METHODS.names():
        doc = (METHODS.get(name).__doc__ or "").strip().splitlines()[0]
        sys.stdout.write(f"{name:10s} {doc}\n")
        if args.options:
            defaults = option_defaults(name)
            for key, text in option_help(name).items():
                sys.stdout.write(f"    {name}.{key} (default {json.dumps(defaults[key])}): {text}\n")
    sys.stdout.write("{:10s} {}\n".format("METHOD+replay", "any method, replaying earlier tasks' examples "
                                                         "(--replay SHARE, --replay-buffer N)"))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from losia_cl.models import model_names

    for name, description in model_names().items():
        sys.stdout.write(f"{name:14s} {description}\n")
    sys.stdout.write("{:14s} {}\n".format("ID or PATH", "any Hugging Face model id or local directory"))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from losia_cl.bench import main as bench_main

    return bench_main(args.bench_args)


def _version() -> str:
    from losia_cl import __version__

    return f"losia-cl {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="losia-cl", description="Continual learning for language models with LoSiA. "
                                                  "The main job: losia-cl run.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(sub)
    _add_tune_parser(sub)
    from losia_cl.evaluation.cli import add_cli as add_eval_cli

    add_eval_cli(sub)
    sub.add_parser("streams", help="list the available task streams").set_defaults(func=_cmd_streams)
    methods = sub.add_parser("methods", help="list the training methods (--options: and their options)")
    methods.add_argument("--options", action="store_true", help="also list every method's options")
    methods.set_defaults(func=_cmd_methods)
    sub.add_parser("models", help="list the built-in models").set_defaults(func=_cmd_models)
    # bench has its own parser (losia_cl.bench; it imports torch): every argument after the word goes to it
    sub.add_parser("bench", add_help=False, help="training-step speed and memory of the methods "
                                                 "(losia-cl bench --help)").set_defaults(func=_cmd_bench)
    try:
        from losia_cl.report import add_cli
    except ImportError:  # pragma: no cover - the report package is part of the distribution
        pass
    else:
        add_cli(sub)
    return parser


def _verbosity(args: argparse.Namespace) -> int:
    """-v count minus -q count."""
    return getattr(args, "verbose", 0) - getattr(args, "quiet", 0)


def _configure_logging(verbosity: int, progress: bool = True) -> None:
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}.get(max(verbosity, -2), logging.DEBUG)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 reports for all: the others only fail loudly
        level = max(level, logging.ERROR)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 2 else max(level, logging.WARNING))
    if verbosity < 1:  # deprecation notices and advice of the libraries we drive are not the user's business
        warnings.filterwarnings("ignore", category=FutureWarning)
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    _library_progress_bars(progress and verbosity >= 0)


def _library_progress_bars(wanted: bool) -> None:
    """Turn off the progress bars of the libraries losia-cl drives (transformers' "Loading weights", the Hub's
    downloads, datasets' maps) unless they are wanted and stderr is a terminal: in a pipe or a log file a bar
    is a stream of carriage returns.  The environment switches are read when a library is imported (and by
    the processes torchrun starts); a library imported already is switched off directly."""
    from losia_cl.progress import disabled_by_environment

    if wanted and sys.stderr.isatty() and not disabled_by_environment():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # huggingface_hub, and transformers through it
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a worker of torchrun: die with its agent, never run on orphaned
        from losia_cl.distributed.lifeline import bind_torchrun_worker

        bind_torchrun_worker()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if getattr(args, "func", None) is _cmd_bench:
        args.bench_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(_verbosity(args), progress=getattr(args, "progress", True))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
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
