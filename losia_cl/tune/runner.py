"""``losia-cl tune``: every method over its learning-rate grid on the stream's first tasks, scored on eval.

For each method and each learning rate of its grid, the method is trained through the first
``tune_tasks`` tasks of the stream exactly as ``losia-cl run`` would train it (same model, budget, seed and
data order), and every task is scored on its **eval** split after every task
(:func:`losia_cl.streams.heldout.tuning_stream`: a task's own eval split, or a seeded slice held out from
its training data).  The test split is never read for tasks that have an eval split.  The rule of
:mod:`losia_cl.tune.select` picks one learning rate per method; ``DIR/tune.json`` records every grid point.
Each grid point keeps its own folder under ``DIR/grid/<method>/lr=<value>/``; ``--resume`` skips the
points already finished (and loads no model when every point is: grid points computed by separate
``tune --methods M --resume`` processes into one folder are collected this way).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path


from losia_cl.errors import ConfigError, DataError
from losia_cl.streams import Stream
from losia_cl.streams.heldout import tuning_stream
from losia_cl.trainer.config import RunConfig
from losia_cl.tune.select import GridPoint, choose, write_tune_file

logger = logging.getLogger(__name__)

DEFAULT_TUNE_TASKS = 2
TUNE_FILE = "tune.json"


@dataclass
class TuneOutcome:
    """Where ``tune.json`` lies, the chosen rate per method and every grid point."""

    path: Path
    chosen: dict[str, float]
    points: dict[str, list[GridPoint]]
    notes: dict[str, list[str]]


def tune_out_dir(config: RunConfig) -> Path:
    if config.out:
        return Path(config.out)
    from losia_cl.trainer.config import stream_label

    return Path("runs") / f"{stream_label(config.stream)}-{Path(config.model).name or 'model'}-tune-seed{config.seed}"


def _split_names(stream: Stream, tuning: Stream) -> dict[str, str]:
    return {
        t.name: "eval" if original.eval else f"held-out slice of train ({len(t.test)} examples)"
        for original, t in zip(stream.tasks, tuning.tasks)
    }


def run_tune(
    config: RunConfig,
    grid: dict[str, list[float]],
    *,
    tune_tasks: int = DEFAULT_TUNE_TASKS,
    stream: Stream | None = None,
    command: list[str] | None = None,
) -> TuneOutcome:
    """Run the grid of every method of ``config`` and write ``tune.json`` (see the module docstring).

    ``stream`` replaces the stream ``config`` names (the tasks must carry what the run would load).
    ``tune_tasks`` larger than the stream is cut to the stream's length.
    """
    import torch

    from losia_cl.models import load_model
    from losia_cl.trainer.experiment import load_run_stream, resolve_device
    from losia_cl.trainer.sequential import SequentialTrainer, StageScores, evaluate_stage

    missing = [m for m in config.methods if m not in grid]
    if missing:
        raise ConfigError(f"tune: no learning-rate grid for {', '.join(missing)}")
    full = stream if stream is not None else load_run_stream(config)
    if tune_tasks > len(full):
        logger.warning("tune: the stream has %d task(s); tuning on all of them, not %d", len(full), tune_tasks)
        tune_tasks = len(full)
    tuning = tuning_stream(full, num_tasks=tune_tasks, seed=config.seed)
    out = tune_out_dir(config)
    tune_file = out / TUNE_FILE
    if tune_file.exists() and not config.resume:
        raise DataError(f"{tune_file} exists: pass --resume to reuse its finished grid points, or choose another --out")
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)

    def loader():
        torch.manual_seed(config.seed)
        return load_model(config.model, dtype=dtype, device=device, seed=config.seed)

    base_config = replace(config, out=str(out), report=False, retention=False, lr={}, lr_from=None)
    base_stage = None  # evaluated once, when the first grid point has to be trained

    def base() -> StageScores:
        nonlocal base_stage
        if base_stage is None:
            model, tokenizer = loader()
            base_stage = evaluate_stage(model, tokenizer, tuning, base_config, device, out / "base", 0)
            del model
        return base_stage

    points: dict[str, list[GridPoint]] = {}
    chosen: dict[str, float] = {}
    notes: dict[str, list[str]] = {}
    for method in config.methods:
        points[method] = []
        for lr in grid[method]:
            point_dir = out / "grid" / method / f"lr={lr:g}"
            point_config = replace(base_config, methods=(method,), lr={method: lr}, out=str(point_dir))
            done = point_dir / method / "results.json"
            if config.resume and done.exists():
                results = json.loads(done.read_text())
            else:
                logger.info("tune %s: learning rate %g on %s", method, lr, ", ".join(tuning.task_names))
                results = SequentialTrainer(point_config, tuning, method, loader, device, base().scores,
                                            base_loglik=base().loglik).run()
            graded = results.get("loglik_metrics") or {}
            points[method].append(GridPoint(lr=lr, ap=float(results["metrics"]["average_performance"]),
                                            scores=results["scores"], loglik_ap=graded.get("average_performance")))
        chosen[method], notes[method] = choose(points[method])
        logger.info("tune %s: chose learning rate %g (%s)", method, chosen[method],
                    ", ".join(f"{p.lr:g}: AP {p.ap:.3f}" for p in points[method]))
        for note in notes[method]:
            logger.warning("tune %s: %s", method, note)
    write_tune_file(tune_file, {
        "command": command or [],
        "stream": base_config.to_dict()["stream"],
        "model": config.model,
        "seed": config.seed,
        "tasks": tuning.task_names,
        "splits": _split_names(full, tuning),
        "config": base_config.to_dict(),
        "grid": {m: [p.to_dict() for p in pts] for m, pts in points.items()},
        "chosen": chosen,
        "notes": notes,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return TuneOutcome(tune_file, chosen, points, notes)


def describe(outcome: TuneOutcome) -> str:
    """A Markdown table of every grid point, the chosen rate marked, for the terminal."""
    lines = ["| method | learning rate | eval AP | chosen |", "|---|---|---|---|"]
    for method, pts in outcome.points.items():
        for p in pts:
            mark = "\u2190" if p.lr == outcome.chosen[method] else ""
            lines.append(f"| {method} | {p.lr:g} | {p.ap:.3f} | {mark} |")
    return "\n".join(lines)


