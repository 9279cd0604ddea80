"""Continuing a finished run's stream with new tasks: ``losia-cl run --from RUN_DIR --tasks new_a,new_b``.

Every method starts from the model RUN_DIR saved after its last task (:mod:`~losia_cl.trainer.saved_models`)
and trains the new tasks; the stream of the new run is RUN_DIR's tasks followed by the new ones, and its
score matrix covers the whole history:

* rows 0 to T₀ (T₀ = RUN_DIR's tasks) on RUN_DIR's tasks are RUN_DIR's own rows, copied;
* row 0 on the new tasks is the base model's score (computed once, like every run's row 0);
* row T₀ on the new tasks is the saved model's score, measured before the first new task (the cell FWT
  reads); the saved model is scored on RUN_DIR's tasks too, and a score that differs from RUN_DIR's
  row T₀ is logged as a warning (the saved model should reproduce it);
* rows 1 to T₀−1 on the new tasks are null: those models are gone (no metric reads these cells);
* every row after a new task scores every task, RUN_DIR's included, so BWT and forgetting span the history.

Carried over: the saved weights (a peft adapter is loaded trainable and trained further; a PiSSA adapter was
saved as the equivalent LoRA and goes on as one), the earlier tasks' results (losses, steps, method records,
timings), the graded log-likelihood matrix (laid out as the score matrix).  Not carried over: optimizer
states (every method starts a new optimizer at every task anyway, LoSiA its subnets and moments too), the
general-knowledge probe and the weight-stability record, which measure from the base model the continued run
does not start from; they are null in the new results.json.  Subnet overlap covers the new tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError
from losia_cl.results import MethodResults, RunInfo, read_results, read_run_info
from losia_cl.streams.types import Stream
from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.saved_models import SavedModel

logger = logging.getLogger(__name__)

#: RunConfig fields that decide which tasks and test examples a run's stream holds.
_STREAM_FIELDS = ("stream", "data_dir", "tasks", "prompt_template", "answer_field", "labels", "max_train_examples",
                  "max_test_examples", "seed", "model", "from_run")
#: Score cells the earlier run could not measure (its stages never saw the new tasks).
MISSING = None


def _refuse(run_dir: Path, reason: str) -> ConfigError:
    return ConfigError(f"--from {run_dir}: {reason}")


@dataclass
class Continuation:
    """What a run continuing ``run_dir`` takes from it (built by :func:`read_continuation`)."""

    run_dir: Path
    info: RunInfo
    earlier: Stream  #: RUN_DIR's tasks, with the test examples it scored
    results: dict[str, MethodResults]
    models: dict[str, tuple[Path, SavedModel]]  #: method -> (saved folder, its description)

    @property
    def num_earlier(self) -> int:
        return len(self.earlier.tasks)

    def joined(self, new: Stream) -> Stream:
        """RUN_DIR's tasks followed by the new ones."""
        name = self.earlier.name if new.name == self.earlier.name else f"{self.earlier.name}+{new.name}"
        return Stream(name=name, tasks=(*self.earlier.tasks, *new.tasks), description=new.description)

    def base_rows(self, scores: list[float], loglik: list[float] | None) -> tuple[list[float], list[float] | None]:
        """Row 0 of both matrices over the joined stream: RUN_DIR's on its tasks (the same for every method),
        ``scores``/``loglik`` (the base model on the new tasks) on the others; the graded row None when either
        part is unknown."""
        first = next(iter(self.results.values()))
        graded = None if loglik is None or first.loglik_scores is None else list(first.loglik_scores[0]) + list(loglik)
        return list(first.scores[0]) + list(scores), graded

    def loader(self, method: str, load_base: Callable[[], tuple[Any, Any]], load_path: Callable[[str], tuple[Any, Any]]
               ) -> Callable[[], tuple[Any, Any]]:
        """Loads ``method``'s saved model: a transformers folder through ``load_path``, a peft adapter (trainable)
        over the base model ``load_base`` gives."""
        folder, saved = self.models[method]

        def load() -> tuple[Any, Any]:
            if saved.kind == "transformers":
                return load_path(str(folder))
            from peft import PeftModel

            base, tokenizer = load_base()
            model = PeftModel.from_pretrained(base, str(folder), is_trainable=True)
            model.eval()
            return model, tokenizer

        return load

    def carries_loglik(self, method: str, base_loglik: list[float] | None) -> bool:
        """Whether the graded matrix spans the history: RUN_DIR recorded it and ``base_loglik`` (row 0 over the
        joined stream, :meth:`base_rows`) is known."""
        return self.results[method].loglik_scores is not None and base_loglik is not None

    def initial_progress(self, method: str, base_scores: list[float], base_loglik: list[float] | None
                         ) -> dict[str, Any]:
        """The fields of the trainer's ``Progress`` at the start of the new tasks: RUN_DIR's rows and records.

        Row T₀ on the new tasks is left null for :meth:`start_row`.  Timings, losses, steps and method records
        hold RUN_DIR's entries, so they cover the whole history.
        """
        earlier = self.results[method]
        n_new = len(base_scores) - self.num_earlier
        scores = [list(base_scores)] + [list(row) + [MISSING] * n_new for row in earlier.scores[1:]]
        if self.carries_loglik(method, base_loglik):
            loglik = [list(base_loglik)] + [list(row) + [MISSING] * n_new for row in earlier.loglik_scores[1:]]
        else:  # placeholders (one row per stage, as a checkpoint expects); null in results.json
            loglik = [[MISSING] * len(base_scores) for _ in earlier.scores]
        timings = dict(earlier.timings or {"train": earlier.train_seconds, "evaluation": earlier.eval_seconds or 0.0})
        return {
            "scores": scores, "loglik_scores": loglik, "timings": timings,
            "losses": dict(earlier.losses), "steps": dict(earlier.steps),
            "updating_steps": dict(earlier.updating_steps), "lr_mass": dict(earlier.lr_mass),
            "peak_memory_bytes": earlier.peak_memory_bytes, "method_record": dict(earlier.method_record),
        }

    def start_row(self, method: str, scores: list[float], loglik: list[float]) -> tuple[list[float], list[float]]:
        """Row T₀ of both matrices: RUN_DIR's on its tasks, the measured ``scores``/``loglik`` of the saved model
        now on the new ones.

        A measured score on an earlier task that differs from RUN_DIR's is logged: the saved model should give it.
        """
        earlier = self.results[method]
        row = earlier.scores[self.num_earlier]
        differing = [task.name for task, old, now in zip(self.earlier.tasks, row, scores) if abs(old - now) > 1e-9]
        if differing:
            logger.warning("%s: the model saved in %s scores %s differently than that run did (%s)", method,
                           self.run_dir, ", ".join(differing),
                           ", ".join(f"{o:.3f} -> {m:.3f}" for o, m in zip(row, scores)))
        graded = (earlier.loglik_scores[self.num_earlier] if earlier.loglik_scores is not None
                  else [MISSING] * self.num_earlier)
        return list(row) + list(scores[self.num_earlier:]), list(graded) + list(loglik[self.num_earlier:])


def _earlier_stream(run_dir: Path, info: RunInfo, load_stream: Callable[[RunConfig], Stream], depth: int = 0) -> Stream:
    """RUN_DIR's tasks as it loaded them (its own continuation chain first)."""
    stored = info.config or {}
    known = {f.name for f in fields(RunConfig)}
    options = {k: stored[k] for k in _STREAM_FIELDS if k in stored and k in known}
    before = options.pop("from_run", None)
    try:
        config = RunConfig(methods=tuple(info.methods), **options)
        stream = load_stream(config)
        if before:
            if depth > 100:
                raise _refuse(run_dir, "its chain of continued runs is too long")
            previous = Path(before)
            earlier = _earlier_stream(previous, read_run_info(previous / "run.json"), load_stream, depth + 1)
            stream = Stream(name=info.stream, tasks=(*earlier.tasks, *stream.tasks), description=stream.description)
    except (ConfigError, DataError) as error:
        raise _refuse(run_dir, f"cannot load its tasks again ({error})") from None
    if stream.task_names != list(info.tasks):
        raise _refuse(run_dir, f"its settings now give the tasks {stream.task_names}, not {info.tasks}")
    return stream


def read_continuation(config: RunConfig, new: Stream, load_stream: Callable[[RunConfig], Stream]) -> Continuation:
    """Check that ``config.from_run`` can be continued by this run of the stream ``new``; nothing is written.

    Refused with one line (:class:`ConfigError`): a folder that is not a finished losia-cl run, other methods,
    another model or dtype, a method without a saved model, a new task already in the run, ``--out`` the same
    folder.  ``load_stream`` loads a stream as a run's settings ask (the earlier tasks are loaded again).
    """
    run_dir = Path(config.from_run)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise _refuse(run_dir, "not a losia-cl run folder (it has no run.json)")
    if run_dir.resolve() == config.out_dir.resolve():
        raise _refuse(run_dir, "it is also --out; the continued run goes into a new folder")
    try:
        info = read_run_info(run_file)
    except DataError as error:
        raise _refuse(run_dir, str(error)) from None
    if not info.finished_at:
        raise _refuse(run_dir, "the run is unfinished (run.json has no finished_at); finish it with --resume first")
    if sorted(info.methods) != sorted(config.methods):
        raise _refuse(run_dir, f"it trained the methods {', '.join(info.methods)}, this run asks for "
                               f"{', '.join(config.methods)}; continue the same methods (--methods)")
    if info.model != config.model:
        raise _refuse(run_dir, f"it trained the model {info.model!r}, this run asks for {config.model!r}; "
                               f"pass --model {info.model}")
    dtype = (info.config or {}).get("dtype", "float32")
    if dtype != config.dtype:
        raise _refuse(run_dir, f"it trained in {dtype}, this run asks for {config.dtype}; pass --dtype {dtype}")
    results, models = {}, {}
    for method in info.methods:
        path = run_dir / method / "results.json"
        try:
            result = read_results(path)
        except DataError as error:
            raise _refuse(run_dir, str(error)) from None
        if result.tasks != info.tasks:
            raise _refuse(run_dir, f"{path} covers the tasks {result.tasks}, run.json {info.tasks}")
        if not result.saved_models:
            raise _refuse(run_dir, f"{method} has no saved model (the run used --no-save)")
        folder = run_dir / method / result.saved_models["final"]
        try:
            saved = SavedModel.read(folder)
        except DataError as error:
            raise _refuse(run_dir, f"{method}'s saved model is unusable: {error}") from None
        results[method], models[method] = result, (folder, saved)
    repeated = [t for t in new.task_names if t in info.tasks]
    if repeated:
        raise _refuse(run_dir, f"the task(s) {', '.join(repeated)} are already in it; a continued stream takes new "
                               "tasks (--tasks)")
    earlier = _earlier_stream(run_dir, info, load_stream)
    return Continuation(run_dir=run_dir, info=info, earlier=earlier, results=results, models=models)
