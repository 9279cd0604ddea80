"""``losia-cl tune``: every method over its learning-rate grid on the stream's first tasks, scored on eval.

For each method, each learning rate of its grid and each tune seed (default: the run's seed and the next
one), the method is trained through the first ``tune_tasks`` tasks of the stream exactly as ``losia-cl run``
would train it under that seed (same model, budget and data order), and every task is scored on its
**eval** split after every task (:func:`losia_cl.streams.heldout.tuning_stream`: a task's own eval split,
or a seeded slice held out from its training data).  Test examples are never scored; their prompts are read
once, to check that no eval prompt is also a test prompt (an overlap is logged and recorded in
``tune.json``).  The rule of :mod:`losia_cl.tune.select` picks one learning rate per method from the
seed-averaged eval scores; while the chosen rate is the lowest or highest of the grid, the grid grows by
one rate half a decade beyond that edge (at most :data:`~losia_cl.tune.grid.MAX_EXTENSIONS` per side), and a
choice still at an edge is reported as such.

The folder follows the rules of ``run`` (:mod:`losia_cl.trainer.run_folder`): ``tune`` writes only into an
absent or empty folder, or, with ``--resume``, into one it wrote (marked by ``tune.json``, written when the
tune starts and completed when it ends), and holds the folder's lock while it works.  The grid is checked
whole (every rate in (0, 1]) before anything is written.  Each grid point keeps its own folder under
``DIR/grid/<method>/lr=<value>/seed<N>/``; ``--resume`` skips the points already finished (and loads no
model when every point is).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError
from losia_cl.streams import Stream
from losia_cl.streams.heldout import tuning_stream
from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.run_folder import RunLock, check_own_folder
from losia_cl.tune.grid import MAX_EXTENSIONS, check_grid, extend
from losia_cl.tune.select import TUNE_FORMAT, Choice, GridPoint, SeedRun, choose, write_tune_file

logger = logging.getLogger(__name__)

DEFAULT_TUNE_TASKS = 2
#: how many tune seeds by default: the run's seed and the ones after it.
DEFAULT_TUNE_SEEDS = 2
TUNE_FILE = "tune.json"
#: RunConfig fields that may differ between a tune and its resumption (the methods may: separate
#: ``tune --methods M --resume`` calls collect their grids into one folder).
_RESUMABLE = ("resume", "progress", "out", "device", "eval_batch_size", "checkpoint_every", "dist_backend",
              "methods", "seed")


@dataclass
class TuneOutcome:
    """Where ``tune.json`` lies, the chosen rate per method, every grid point, the edges and the notes."""

    path: Path
    chosen: dict[str, float]
    points: dict[str, list[GridPoint]]
    notes: dict[str, list[str]]
    edges: dict[str, str | None]


def tune_out_dir(config: RunConfig) -> Path:
    if config.out:
        return Path(config.out)
    from losia_cl.trainer.config import stream_label

    return Path("runs") / f"{stream_label(config.stream)}-{Path(config.model).name or 'model'}-tune-seed{config.seed}"


def default_tune_seeds(seed: int) -> list[int]:
    """The run's seed and the :data:`DEFAULT_TUNE_SEEDS` − 1 seeds after it."""
    return [seed + k for k in range(DEFAULT_TUNE_SEEDS)]


def check_tune_seeds(seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not seeds or any(
            isinstance(s, bool) or not isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"tune_seeds = {seeds!r} is invalid: it must list at least one integer seed, each once")
    return list(seeds)


def _split_names(stream: Stream, tuning: Stream) -> dict[str, str]:
    return {
        t.name: "eval" if original.eval else f"held-out slice of train ({len(t.test)} examples)"
        for original, t in zip(stream.tasks, tuning.tasks)
    }


def eval_test_overlap(stream: Stream, tuning: Stream) -> dict[str, int]:
    """Per tuning task, how many distinct eval prompts are also test prompts (reads test prompts only)."""
    return {t.name: len({e.prompt for e in t.test} & {e.prompt for e in original.test})
            for original, t in zip(stream.tasks, tuning.tasks)}


def _check_same_tune(stored: dict[str, Any], header: dict[str, Any], path: Path) -> None:
    """``--resume`` must continue the same tune: same settings (but the methods and seeds) and tasks."""
    old, new = stored.get("config") or {}, header["config"]
    differing = sorted(k for k in set(old) | set(new) if k not in _RESUMABLE and old.get(k) != new.get(k))
    if stored.get("tasks") != header["tasks"]:
        differing.insert(0, "tasks")
    if differing:
        raise ConfigError(f"--resume: {path} was written with different {', '.join(differing)}; resume with the "
                          "same options, or choose another --out")


def run_tune(
    config: RunConfig,
    grid: dict[str, list[float]],
    *,
    tune_tasks: int = DEFAULT_TUNE_TASKS,
    tune_seeds: Sequence[int] | None = None,
    max_extensions: int = MAX_EXTENSIONS,
    stream: Stream | None = None,
    command: list[str] | None = None,
) -> TuneOutcome:
    """Run the grid of every method of ``config`` and write ``tune.json`` (see the module docstring).

    ``stream`` replaces the stream ``config`` names (the tasks must carry what the run would load; the same
    stream serves every tune seed).  ``tune_tasks`` larger than the stream is cut to the stream's length.
    ``tune_seeds`` default to :func:`default_tune_seeds` of ``config.seed``.  Everything is checked (the
    grid, the seeds, the streams, the folder) before anything is written.
    """
    grid = check_grid(grid, config.methods)
    seeds = check_tune_seeds(default_tune_seeds(config.seed) if tune_seeds is None else tune_seeds)
    if isinstance(max_extensions, bool) or not isinstance(max_extensions, int) or max_extensions < 0:
        raise ConfigError(f"max_extensions = {max_extensions!r} is invalid: it must be an integer >= 0")
    out = tune_out_dir(config)
    stored = check_own_folder(out, resume=config.resume, own_file=TUNE_FILE,
                              format_prefix=TUNE_FORMAT.split("/")[0] + "/", kind="tune")

    from losia_cl.trainer.experiment import load_run_stream

    fulls = {s: stream if stream is not None else load_run_stream(replace(config, seed=s)) for s in seeds}
    length = min(len(f) for f in fulls.values())
    if tune_tasks > length:
        logger.warning("tune: the stream has %d task(s); tuning on all of them, not %d", length, tune_tasks)
        tune_tasks = length
    tunings = {s: tuning_stream(fulls[s], num_tasks=tune_tasks, seed=s) for s in seeds}
    overlaps = {str(s): eval_test_overlap(fulls[s], tunings[s]) for s in seeds}
    for s, per_task in overlaps.items():
        for task, count in per_task.items():
            if count:
                logger.warning("tune: %d eval prompt(s) of task %s (seed %s) are also test prompts; the choice "
                               "is not independent of test", count, task, s)
    first = tunings[seeds[0]]
    base_config = replace(config, out=str(out), report=False, retention=False, lr={}, lr_from=None,
                          save_models=False, save_every_task=False, from_run=None)
    header = {
        "command": command or [],
        "stream": base_config.to_dict()["stream"],
        "model": config.model,
        "seed": config.seed,
        "tune_seeds": seeds,
        "tasks": first.task_names,
        "splits": _split_names(fulls[seeds[0]], first),
        "eval_test_overlap": overlaps,
        "max_extensions": max_extensions,
        "config": base_config.to_dict(),
    }
    if stored is not None:
        _check_same_tune(stored, header, out / TUNE_FILE)
    with RunLock(out):
        started = (stored or {}).get("started_at") or _now()
        if stored is None or "chosen" not in stored:
            write_tune_file(out / TUNE_FILE, {**header, "started_at": started, "finished_at": None})
        trainer = _GridTrainer(base_config, tunings, out)
        points: dict[str, list[GridPoint]] = {}
        choices: dict[str, Choice] = {}
        for method in config.methods:
            points[method], choices[method] = _tune_method(method, grid[method], trainer.point, max_extensions)
        notes = {m: list(c.notes) for m, c in choices.items()}
        write_tune_file(out / TUNE_FILE, {
            **header,
            "grid": {m: [p.to_dict() for p in pts] for m, pts in points.items()},
            "chosen": {m: c.lr for m, c in choices.items()},
            "edge": {m: c.edge for m, c in choices.items()},
            "notes": notes,
            "started_at": started,
            "finished_at": _now(),
        })
    return TuneOutcome(out / TUNE_FILE, {m: c.lr for m, c in choices.items()}, points, notes,
                       {m: c.edge for m, c in choices.items()})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _tune_method(method: str, rates: list[float], point: Callable[[str, float, bool], GridPoint],
                 max_extensions: int) -> tuple[list[GridPoint], Choice]:
    """The method's grid points (the grid extended while the choice is at an edge) and the final choice."""
    points = [point(method, lr, False) for lr in rates]
    used = {"lowest": 0, "highest": 0}
    choice = choose(points)
    while choice.edge is not None:
        new = extend(choice.lr, choice.edge) if used[choice.edge] < max_extensions else None
        if new is None or any(p.lr == new for p in points):
            break
        used[choice.edge] += 1
        logger.info("tune %s: the best learning rate %g is the grid's %s; adding %g", method, choice.lr,
                    choice.edge, new)
        points.append(point(method, new, True))
        choice = choose(points)
    points.sort(key=lambda p: p.lr)
    notes = list(choice.notes)
    if choice.edge is not None:
        if extend(choice.lr, choice.edge) is None:
            limit = "it is the largest rate allowed"
        elif max_extensions == 0:
            limit = "extensions are off: --max-extensions 0"
        elif used[choice.edge] >= max_extensions:
            limit = f"after {used[choice.edge]} extension(s) on that side, the most allowed"
        else:
            limit = ""
        notes.append(f"the chosen learning rate {choice.lr:g} is the grid's {choice.edge}" + (f" ({limit})" if limit
                     else "") + "; a wider grid may find a better one")
    logger.info("tune %s: chose learning rate %g (%s)", method, choice.lr,
                ", ".join(f"{p.lr:g}: LA {p.la:.3f}" for p in points))
    for note in notes:
        logger.warning("tune %s: %s", method, note)
    return points, Choice(choice.lr, choice.edge, tuple(notes))


class _GridTrainer:
    """Trains (or, with ``--resume``, reads back) one grid point under every tune seed."""

    def __init__(self, base_config: RunConfig, tunings: dict[int, Stream], out: Path) -> None:
        self.config = base_config
        self.tunings = tunings
        self.out = out
        self._base: dict[int, list[float]] = {}  # base-model eval scores per seed, when first needed

    def _loader(self, seed: int):
        import torch

        from losia_cl.models import load_model
        from losia_cl.trainer.experiment import resolve_device

        device = resolve_device(self.config.device)
        dtype = getattr(torch, self.config.dtype)

        def load():
            torch.manual_seed(seed)
            return load_model(self.config.model, dtype=dtype, device=device, seed=seed)

        return load, device

    def _base_stage(self, seed: int, load, device):
        from losia_cl.trainer.sequential import evaluate_stage

        if seed not in self._base:
            model, tokenizer = load()
            self._base[seed] = evaluate_stage(model, tokenizer, self.tunings[seed], replace(self.config, seed=seed),
                                              device, self.out / "base" / f"seed{seed}", 0)
            del model
        return self._base[seed]

    def point(self, method: str, lr: float, extended: bool) -> GridPoint:
        runs = []
        for seed, tuning in self.tunings.items():
            point_dir = self.out / "grid" / method / f"lr={lr:g}" / f"seed{seed}"
            done = point_dir / method / "results.json"
            if self.config.resume and done.exists():
                results = json.loads(done.read_text())
            else:
                from losia_cl.trainer.sequential import SequentialTrainer

                logger.info("tune %s: learning rate %g, seed %d, on %s", method, lr, seed,
                            ", ".join(tuning.task_names))
                config = replace(self.config, seed=seed, methods=(method,), lr={method: lr}, out=str(point_dir))
                load, device = self._loader(seed)
                base = self._base_stage(seed, load, device)
                results = SequentialTrainer(config, tuning, method, load, device, base.scores,
                                            base_loglik=base.loglik or None).run()
            metrics, graded = results["metrics"], results.get("loglik_metrics") or {}
            runs.append(SeedRun(seed=seed, la=float(metrics["learning_accuracy"]),
                                ap=float(metrics["average_performance"]), scores=results["scores"],
                                loglik_ap=graded.get("average_performance")))
        return GridPoint(lr=lr, runs=tuple(runs), extended=extended)


def describe(outcome: TuneOutcome) -> str:
    """A Markdown table of every grid point (seed means), the chosen rate marked (and its edge), for the terminal."""
    lines = ["| method | learning rate | eval LA | eval AP | seeds | chosen |", "|---|---|---|---|---|---|"]
    for method, pts in outcome.points.items():
        for p in pts:
            mark = ""
            if p.lr == outcome.chosen[method]:
                edge = outcome.edges.get(method)
                mark = "\u2190" + (f" at the grid's {edge} edge" if edge else "")
            rate = f"{p.lr:g}" + (" (extended)" if p.extended else "")
            lines.append(f"| {method} | {rate} | {p.la:.3f} | {p.ap:.3f} | {len(p.runs)} | {mark} |")
    return "\n".join(lines)
