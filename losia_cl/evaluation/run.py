"""``losia-cl eval``: score one model on the test splits of a stream's tasks, as ``losia-cl run`` scores its base.

The same pieces as the trainer's row 0: the stream selected by
:func:`~losia_cl.trainer.experiment.load_run_stream`, the model loaded with the run's seed, greedy batched
generation scored by each task's scorer (:class:`~losia_cl.evaluator.Evaluator`), the graded
log-likelihood of the references (scored in the generation's forward pass) and the general probe
(:class:`~losia_cl.retention.drift.GeneralProbe`).  Everything is checked before the first byte is
written: the stream and its data, the output folder, the device, the model (and a PEFT adapter's base).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from losia_cl.errors import ConfigError, DataError
from losia_cl.evaluation.config import EvalConfig
from losia_cl.evaluation.model import ModelPlan, apply_adapter, load_seeded, plan_models
from losia_cl.evaluation.results import EVAL_FILE, EVAL_FORMAT, EvalResults
from losia_cl.evaluator import Evaluator
from losia_cl.files import atomic_write_json, atomic_write_text
from losia_cl.results import read_json
from losia_cl.streams.types import Stream
from losia_cl.trainer.experiment import load_run_stream, resolve_device
from losia_cl.trainer.files import inside

logger = logging.getLogger(__name__)

#: The folder of ``--log-samples`` files in the output folder.
PREDICTIONS = "predictions"


@dataclass(frozen=True)
class EvalOutcome:
    """Where ``eval.json`` was written, and what it holds."""

    path: Path
    results: EvalResults


def check_eval_folder(out: Path) -> None:
    """``--output-path`` must be new, empty or an earlier eval's folder (holding a losia-cl ``eval.json``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-path {out}: is a file, not a folder")
    if not out.exists():
        parent = next((p for p in out.parents if p.exists()), Path("."))
        if not parent.is_dir():
            raise ConfigError(f"--output-path {out}: cannot be created, {parent} is a file")
        return
    if (out / EVAL_FILE).is_file():
        try:
            kind = str(read_json(out / EVAL_FILE).get("format", ""))
        except DataError:
            kind = ""
        if kind.split("/")[0] == EVAL_FORMAT.split("/")[0]:
            return
        raise ConfigError(f"--output-path {out}: {out / EVAL_FILE} is not a losia-cl eval file; choose another folder")
    others = sorted(entry.name for entry in out.iterdir())
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise ConfigError(f"--output-path {out}: the folder is not empty ({shown}) and holds no {EVAL_FILE} of an "
                          "earlier eval; choose a new or empty folder")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("losia-cl", "torch", "transformers", "peft"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _general_probe(model: Any, tokenizer: Any, config: EvalConfig, device: torch.device) -> Any:
    from losia_cl.retention.drift import GeneralProbe

    return GeneralProbe(model, tokenizer, batch_size=config.batch_size, max_length=config.max_length,
                        chat_template=config.chat_template, device=device)


def _load(config: EvalConfig, plan: ModelPlan, device: torch.device) -> tuple[Any, Any, Any]:
    """The model to score, its tokenizer and the general probe (its reference: the base model, else the model)."""
    dtype = getattr(torch, config.dtype)
    probe = None
    if plan.adapter is not None:
        model, tokenizer = load_seeded(plan.spec, dtype=dtype, device=device, seed=config.seed)
        if config.probe:
            probe = _general_probe(model, tokenizer, config, device)
        return apply_adapter(model, plan.adapter), tokenizer, probe
    if plan.reference is not None and config.probe:
        base, base_tokenizer = load_seeded(plan.reference, dtype=dtype, device=device, seed=config.seed)
        probe = _general_probe(base, base_tokenizer, config, device)
        del base
    model, tokenizer = load_seeded(plan.spec, dtype=dtype, device=device, seed=config.seed)
    if probe is not None and probe.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"--base-model {plan.reference}: its tokenizer differs from that of --model {plan.spec}; "
                          "the probe compares the two on the same tokens")
    if config.probe and probe is None:
        probe = _general_probe(model, tokenizer, config, device)
    return model, tokenizer, probe


def _probe_record(probe: Any, model: Any, reference: str | None) -> dict[str, Any] | None:
    if probe is None:
        return None
    if reference is None:  # the probe's reference is the model itself: only its right answers mean something
        return {"items": len(probe.items), "right": probe.base_right, "base_model": None, "base_right": None,
                "kl": None, "kept": None}
    point = probe.measure(model)
    return {"items": len(probe.items), "right": point.right, "base_model": reference, "base_right": probe.base_right,
            "kl": point.kl, "kept": point.kept}


def run_eval(config: EvalConfig, command: list[str] | None = None) -> EvalOutcome:
    """Score ``config.model`` on the test splits of ``config.stream``; write ``eval.json`` (and the predictions)."""
    stream: Stream = load_run_stream(config)  # type: ignore[arg-type]  (EvalConfig has the fields it reads)
    out = config.output_dir
    check_eval_folder(out)
    device = resolve_device(config.device)
    plan = plan_models(config.model, config.base_model)
    started_at = _now()
    model, tokenizer, probe = _load(config, plan, device)
    reference = plan.reference
    started = time.perf_counter()
    evaluator = Evaluator(tokenizer, list(stream), batch_size=config.batch_size, max_length=config.max_length,
                          chat_template=config.chat_template, references=True)
    evaluations = evaluator.evaluate(model, device, progress=config.progress, desc=f"evaluate {config.model}")
    loglik = [float(evaluation.loglik or 0.0) for evaluation in evaluations]
    probe_record = _probe_record(probe, model, reference)
    results = EvalResults(
        model=config.model, stream=stream.name, tasks=stream.task_names,
        scores=[e.score for e in evaluations], loglik_scores=loglik, examples=[len(t.test) for t in stream],
        task_metrics={t.name: t.metric for t in stream}, base_model=reference, probe=probe_record,
        seed=config.seed, config=config.to_dict(), command=list(command or []), versions=_versions(),
        started_at=started_at, finished_at=_now(), eval_seconds=time.perf_counter() - started,
    )
    out.mkdir(parents=True, exist_ok=True)
    if config.log_samples:
        folder = inside(out, PREDICTIONS)
        for stale in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            stale.unlink()
        for evaluation in evaluations:
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in evaluation.predictions)
            atomic_write_text(inside(out, PREDICTIONS, f"{evaluation.task}.jsonl"), lines)
    path = atomic_write_json(inside(out, EVAL_FILE), results.to_json())
    logger.info("%s: %s", config.model, ", ".join(f"{t} {s:.3f}" for t, s in zip(results.tasks, results.scores)))
    return EvalOutcome(path, results)


def describe(results: EvalResults) -> str:
    """A Markdown table of the scores (and the probe's line) for the terminal."""
    lines = ["| task | metric | n | score | loglik |", "|---|---|---|---|---|"]
    for task, score, loglik, n in zip(results.tasks, results.scores, results.loglik_scores, results.examples):
        lines.append(f"| {task} | {results.task_metrics.get(task, '')} | {n} | {score:.3f} | {loglik:.4f} |")
    probe = results.probe
    if probe is not None:
        line = f"general probe: {probe['right']} of {probe['items']} right"
        if probe.get("base_model") is not None:
            kept = "n/a" if probe["kept"] is None else f"{probe['kept']:.3f}"
            line += (f"; against {probe['base_model']} ({probe['base_right']} right): KL {probe['kl']:.4f}, "
                     f"kept {kept}")
        lines += ["", line]
    return "\n".join(lines)
