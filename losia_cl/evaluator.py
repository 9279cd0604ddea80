"""Greedy, batched generation on the test splits of one or more tasks, scored by each task's metric.

:class:`Evaluator` evaluates the tasks of a stream together: every test prompt of every task is
tokenized once (and kept for later stages), the prompts of all tasks are sorted by length and
cut into batches of ``batch_size``, so a batch wastes little padding and each decoding step
reads the weights once for up to ``batch_size`` rows, whatever task they come from.  Each row
stops at its own task's ``max_new_tokens`` or at EOS, and a batch stops as soon as every row
has stopped.  Greedy decoding gives every row the tokens it would get alone (up to
floating-point ties); ``tests/test_trainer_evaluate.py`` checks the predictions against a
per-example greedy decode.  With ``references=True`` the same forward pass over the prompts also
scores every example's reference answer teacher-forced (:mod:`losia_cl.decoding`), so the
graded score costs no second pass over the prompts.

With a :class:`~losia_cl.distributed.context.DistContext` of several processes the same batches
are formed and dealt out round-robin, each rank generates its batches, and the predictions are
gathered back in order on every rank, so the result equals the one-process evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from losia_cl.decoding import decode_batch, reference_logprobs
from losia_cl.metrics.scorers import get_scorer
from losia_cl.progress import progress_bar
from losia_cl.streams.tokenization import IGNORE_INDEX, decode_generated, encode_examples, pad_token_id
from losia_cl.streams.types import Task

if TYPE_CHECKING:
    from losia_cl.distributed.context import DistContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEvaluation:
    """A task's score (0–1), one record per test example, and (with ``references``) the graded score: the mean
    log-likelihood per reference answer token (nats, ≤ 0; see :mod:`losia_cl.trainer.loglik`)."""

    task: str
    score: float
    predictions: list[dict[str, Any]]
    loglik: float | None = None


@dataclass(frozen=True)
class GenerationStats:
    """What one :meth:`Evaluator.evaluate` call computed (for throughput figures)."""

    prompts: int  #: test prompts generated for
    batches: int  #: prefill passes (one per batch)
    prompt_tokens: int  #: prompt tokens, padding excluded
    padded_prompt_tokens: int  #: prompt tokens the model processed, padding included
    new_tokens: int  #: generated tokens kept (up to and including EOS, within each row's budget)
    decode_steps: int  #: forward passes after the prefill, summed over batches
    seconds: float  #: wall time of the generation (scoring excluded)

    @property
    def new_tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Prompt:
    task: int  #: position of the task in the evaluator's task list
    index: int  #: position of the example in the task's test split
    ids: list[int]
    budget: int  #: the task's max_new_tokens
    #: the reference answer's tokens (answer + EOS) scored in the prefill, when they follow exactly these prompt ids
    reference: tuple[int, ...] | None = None
    #: the teacher-forced features, when the reference must be scored in a pass of its own (the training
    #: sequence keeps more or fewer prompt tokens than the generation prompt)
    apart: dict[str, Any] | None = None


#: ``score(task position, example index, logprobs [reference tokens, vocab], reference tokens) -> value``: what is
#: kept of a reference's teacher-forced log-probabilities (see :meth:`Evaluator.generate_and_score`).
ReferenceScore = Callable[[int, int, Tensor, Tensor], Any]


def answer_logprob_sum(task: int, index: int, logprobs: Tensor, targets: Tensor) -> tuple[float, int]:
    """The default :data:`ReferenceScore`: the summed log-probability of the reference tokens, and their count."""
    return float(logprobs.gather(1, targets[:, None].to(logprobs.device)).sum()), int(targets.numel())


class Evaluator:
    """Evaluates ``tasks`` together (see the module docstring); build it once, call :meth:`evaluate` per stage.

    Prompts keep their last ``max_length - task.max_new_tokens`` tokens (as in training, the
    start is cut) and are left-padded.  Each prediction record holds ``index``, ``prompt``,
    ``prediction``, ``reference`` and the example's own ``score`` (the task metric on that
    example alone).  With ``references=True`` every test example's reference answer is also scored
    teacher-forced (its sequence built exactly as for training), in the same forward pass as the
    generation's prompt (:mod:`losia_cl.decoding`): :meth:`evaluate` then gives each task's
    ``loglik``.
    """

    def __init__(
        self, tokenizer: Any, tasks: Sequence[Task], *, batch_size: int, max_length: int, chat_template: bool = False,
        references: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size = {batch_size!r} is invalid: it must be an integer >= 1")
        self.tokenizer = tokenizer
        self.tasks = list(tasks)
        self.batch_size = batch_size
        self.max_length = max_length
        self.chat_template = chat_template
        self.references = references
        self.last_stats: GenerationStats | None = None
        self._prompts: list[_Prompt] | None = None

    def prompts(self) -> list[_Prompt]:
        """Every test prompt of every task, tokenized on first use, in generation order (by length)."""
        if self._prompts is None:
            prompts = []
            for position, task in enumerate(self.tasks):
                features = encode_examples(
                    self.tokenizer, task.test, max_length=max(1, self.max_length - task.max_new_tokens),
                    chat_template=self.chat_template, for_generation=True,
                )
                sequences = (encode_examples(self.tokenizer, task.test, max_length=self.max_length,
                                             chat_template=self.chat_template)
                             if self.references else [None] * len(features))
                prompts.extend(_reference_prompt(_Prompt(position, f["index"], f["input_ids"], task.max_new_tokens), s)
                               for f, s in zip(features, sequences))
            prompts.sort(key=lambda p: (len(p.ids), p.budget, p.task, p.index))
            self._prompts = prompts
        return self._prompts

    def generate(self, model: nn.Module, device: torch.device | None = None, progress: bool = False,
                 desc: str = "evaluate", dist: DistContext | None = None) -> list[list[str]]:
        """Greedy predictions ``[task][example]`` of ``model`` (left in the train/eval mode it had).

        With ``dist``, this rank generates its share of the batches and every rank gets all
        predictions; :attr:`last_stats` then counts this rank's batches.
        """
        return self.generate_and_score(model, device, progress=progress, desc=desc, dist=dist)[0]

    @torch.no_grad()
    def generate_and_score(
        self, model: nn.Module, device: torch.device | None = None, *, progress: bool = False, desc: str = "evaluate",
        dist: DistContext | None = None, score: ReferenceScore | None = None,
    ) -> tuple[list[list[str]], list[list[Any]] | None]:
        """Greedy predictions ``[task][example]`` and, with ``references`` and ``score``, ``score(...)`` of every
        example's teacher-forced reference (``[task][example]``; else None)."""
        device = device or next(model.parameters()).device
        prompts = self.prompts()
        pad = pad_token_id(self.tokenizer)
        score = score if self.references else None
        predictions = [[""] * len(task.test) for task in self.tasks]
        scored: list[list[Any]] | None = [[None] * len(task.test) for task in self.tasks] if score else None
        counts = {"batches": 0, "padded": 0, "new": 0, "steps": 0}
        batches = [prompts[start:start + self.batch_size] for start in range(0, len(prompts), self.batch_size)]
        mine = batches if dist is None else dist.shard(batches)
        generated: dict[tuple[int, int], tuple[str, Any]] = {}
        was_training = model.training
        model.eval()
        started = time.perf_counter()
        try:
            for batch in progress_bar(mine, enabled=progress, desc=desc, unit="batch", leave=False):
                for prompt, text, new, value in self._generate_batch(model, batch, pad, device, counts, score):
                    generated[(prompt.task, prompt.index)] = (text, value)
                    counts["new"] += new
        finally:
            model.train(was_training)
        parts = dist.gather_objects(generated) if dist is not None and dist.enabled else [generated]
        for part in parts:
            for (task, index), (text, value) in part.items():
                predictions[task][index] = text
                if scored is not None:
                    scored[task][index] = value
        self.last_stats = GenerationStats(
            prompts=sum(len(b) for b in mine), batches=counts["batches"],
            prompt_tokens=sum(len(p.ids) for b in mine for p in b), padded_prompt_tokens=counts["padded"],
            new_tokens=counts["new"], decode_steps=counts["steps"], seconds=time.perf_counter() - started,
        )
        return predictions, scored

    def _generate_batch(self, model: nn.Module, batch: list[_Prompt], pad: int, device: torch.device,
                        counts: dict[str, int], score: ReferenceScore | None) -> list[tuple[_Prompt, str, int, Any]]:
        eos = self.tokenizer.eos_token_id
        budgets = [p.budget for p in batch]
        decoded = decode_batch(model, [p.ids for p in batch], budgets, pad_token_id=pad, eos_token_id=eos,
                               references=[p.reference for p in batch] if score else None, device=device)
        width = decoded.width
        counts["batches"] += 1
        counts["padded"] += len(batch) * width
        counts["steps"] += decoded.steps
        rows = [row[: width + budget] for row, budget in zip(decoded.tokens, budgets)]
        texts = decode_generated(self.tokenizer, rows, prompt_width=width)
        values: list[Any] = [None] * len(batch)
        if score:
            logprobs = list(decoded.reference_logprobs)
            apart = [i for i, p in enumerate(batch) if p.apart is not None]
            if apart:
                for i, lp in zip(apart, reference_logprobs(model, [batch[i].apart for i in apart], pad_token_id=pad,
                                                           device=device)):
                    logprobs[i] = lp
            for i, p in enumerate(batch):
                targets = p.reference if p.apart is None else _answer_tokens(p.apart)
                values[i] = score(p.task, p.index, logprobs[i], torch.tensor(targets, dtype=torch.long))
        return [(p, text, _kept_tokens(row[width:], eos), value)
                for p, text, row, value in zip(batch, texts, rows, values)]

    def evaluate(self, model: nn.Module, device: torch.device | None = None, progress: bool = False,
                 desc: str = "evaluate", dist: DistContext | None = None) -> list[TaskEvaluation]:
        """Generate for every test prompt and score each task (one :class:`TaskEvaluation` per task, in order);
        with ``references``, each task's ``loglik`` too."""
        predictions, scored = self.generate_and_score(model, device, progress=progress, desc=desc, dist=dist,
                                                      score=answer_logprob_sum)
        out = []
        for position, (task, preds) in enumerate(zip(self.tasks, predictions)):
            evaluation = score_task(task, preds)
            if scored is not None:
                total = sum(value[0] for value in scored[position])
                tokens = sum(value[1] for value in scored[position])
                evaluation = replace(evaluation, loglik=total / tokens if tokens else 0.0)
            out.append(evaluation)
        return out


def _answer_tokens(features: dict[str, Any]) -> list[int]:
    return [token for token in features["labels"] if token != IGNORE_INDEX]


def _reference_prompt(prompt: _Prompt, sequence: dict[str, Any] | None) -> _Prompt:
    """``prompt`` with its reference: attached to the prompt when the training sequence starts with exactly the
    generation prompt's ids, else kept for a pass of its own."""
    if sequence is None:
        return prompt
    answer = _answer_tokens(sequence)
    head = sequence["input_ids"][:len(sequence["input_ids"]) - len(answer)]
    if head == prompt.ids:
        return replace(prompt, reference=tuple(answer))
    return replace(prompt, apart=sequence)


def _kept_tokens(new: Tensor, eos: int | None) -> int:
    """Generated tokens up to and including the first EOS."""
    if eos is not None:
        hits = (new == eos).nonzero()
        if hits.numel():
            return int(hits[0, 0]) + 1
    return int(new.numel())


def score_task(task: Task, predictions: list[str]) -> TaskEvaluation:
    """The task's score over all its predictions, and one record per example with its own score."""
    scorer = get_scorer(task.metric)
    examples = task.test
    score = float(scorer(predictions, [ex.answer for ex in examples], [ex.prompt for ex in examples]))
    records = [
        {"index": i, "prompt": ex.prompt, "prediction": pred, "reference": ex.answer,
         "score": float(scorer([pred], [ex.answer], [ex.prompt]))}
        for i, (ex, pred) in enumerate(zip(examples, predictions))
    ]
    return TaskEvaluation(task.name, score, records)


def evaluate_task(
    model: nn.Module,
    tokenizer: Any,
    task: Task,
    *,
    batch_size: int,
    max_length: int,
    chat_template: bool = False,
    device: torch.device | None = None,
    dist: DistContext | None = None,
) -> TaskEvaluation:
    """Generate greedily for every test prompt of one task and score the predictions (see :class:`Evaluator`)."""
    evaluator = Evaluator(tokenizer, [task], batch_size=batch_size, max_length=max_length, chat_template=chat_template)
    return evaluator.evaluate(model, device, dist=dist)[0]
