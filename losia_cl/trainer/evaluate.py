"""Greedy, batched generation on the test splits of one or more tasks, scored by each task's metric.

:class:`Evaluator` evaluates the tasks of a stream together: every test prompt of every task is
tokenized once (and kept for later stages), the prompts of all tasks are sorted by length and
cut into batches of ``batch_size``, so a batch wastes little padding and each decoding step
reads the weights once for up to ``batch_size`` rows, whatever task they come from.  Each row
stops at its own task's ``max_new_tokens`` or at EOS, and a batch stops as soon as every row
has stopped.  Greedy decoding gives every row the tokens it would get alone (up to
floating-point ties); ``tests/test_trainer_evaluate.py`` checks the predictions against a
per-example greedy decode.

With a :class:`~losia_cl.distributed.context.DistContext` of several processes the same batches
are formed and dealt out round-robin, each rank generates its batches, and the predictions are
gathered back in order on every rank, so the result equals the one-process evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from losia_cl.metrics.scorers import get_scorer
from losia_cl.progress import progress_bar
from losia_cl.streams.tokenization import collate_for_generation, decode_generated, encode_examples, pad_token_id
from losia_cl.streams.types import Task

if TYPE_CHECKING:
    from losia_cl.distributed.context import DistContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEvaluation:
    """A task's score (0–1) and one record per test example."""

    task: str
    score: float
    predictions: list[dict[str, Any]]


@dataclass(frozen=True)
class GenerationStats:
    """What one :meth:`Evaluator.evaluate` call computed (for throughput figures)."""

    prompts: int  #: test prompts generated for
    batches: int  #: ``model.generate`` calls
    prompt_tokens: int  #: prompt tokens, padding excluded
    padded_prompt_tokens: int  #: prompt tokens the model processed, padding included
    new_tokens: int  #: generated tokens kept (up to and including EOS, within each row's budget)
    decode_steps: int  #: forward passes after the prompt, summed over batches
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


class _RowBudget:
    """Stopping criterion: row ``i`` is done once it has ``budgets[i]`` new tokens."""

    def __init__(self, prompt_width: int, budgets: Tensor) -> None:
        self.prompt_width = prompt_width
        self.budgets = budgets

    def __call__(self, input_ids: Tensor, scores: Any, **kwargs: Any) -> Tensor:
        return (input_ids.shape[1] - self.prompt_width) >= self.budgets.to(input_ids.device)


class Evaluator:
    """Evaluates ``tasks`` together (see the module docstring); build it once, call :meth:`evaluate` per stage.

    Prompts keep their last ``max_length - task.max_new_tokens`` tokens (as in training, the
    start is cut) and are left-padded.  Each prediction record holds ``index``, ``prompt``,
    ``prediction``, ``reference`` and the example's own ``score`` (the task metric on that
    example alone).
    """

    def __init__(
        self, tokenizer: Any, tasks: Sequence[Task], *, batch_size: int, max_length: int, chat_template: bool = False
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size = {batch_size!r} is invalid: it must be an integer >= 1")
        self.tokenizer = tokenizer
        self.tasks = list(tasks)
        self.batch_size = batch_size
        self.max_length = max_length
        self.chat_template = chat_template
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
                prompts.extend(_Prompt(position, f["index"], f["input_ids"], task.max_new_tokens) for f in features)
            prompts.sort(key=lambda p: (len(p.ids), p.budget, p.task, p.index))
            self._prompts = prompts
        return self._prompts

    @torch.no_grad()
    def generate(self, model: nn.Module, device: torch.device | None = None, progress: bool = False,
                 desc: str = "evaluate", dist: DistContext | None = None) -> list[list[str]]:
        """Greedy predictions ``[task][example]`` of ``model`` (left in the train/eval mode it had).

        With ``dist``, this rank generates its share of the batches and every rank gets all
        predictions; :attr:`last_stats` then counts this rank's batches.
        """
        device = device or next(model.parameters()).device
        prompts = self.prompts()
        pad = pad_token_id(self.tokenizer)
        predictions = [[""] * len(task.test) for task in self.tasks]
        counts = {"batches": 0, "padded": 0, "new": 0, "steps": 0}
        batches = [prompts[start:start + self.batch_size] for start in range(0, len(prompts), self.batch_size)]
        mine = batches if dist is None else dist.shard(batches)
        generated: dict[tuple[int, int], str] = {}
        was_training = model.training
        model.eval()
        started = time.perf_counter()
        try:
            for batch in progress_bar(mine, enabled=progress, desc=desc, unit="batch", leave=False):
                for prompt, text, new in self._generate_batch(model, batch, pad, device, counts):
                    generated[(prompt.task, prompt.index)] = text
                    counts["new"] += new
        finally:
            model.train(was_training)
        parts = dist.gather_objects(generated) if dist is not None and dist.enabled else [generated]
        for part in parts:
            for (task, index), text in part.items():
                predictions[task][index] = text
        self.last_stats = GenerationStats(
            prompts=sum(len(b) for b in mine), batches=counts["batches"],
            prompt_tokens=sum(len(p.ids) for b in mine for p in b), padded_prompt_tokens=counts["padded"],
            new_tokens=counts["new"], decode_steps=counts["steps"], seconds=time.perf_counter() - started,
        )
        return predictions

    def _generate_batch(self, model: nn.Module, batch: list[_Prompt], pad: int, device: torch.device,
                        counts: dict[str, int]) -> list[tuple[_Prompt, str, int]]:
        from transformers import StoppingCriteriaList

        features = [{"input_ids": p.ids, "attention_mask": [1] * len(p.ids)} for p in batch]
        collated = collate_for_generation(features, pad_token_id=pad)
        input_ids = collated["input_ids"].to(device)
        width = input_ids.shape[1]
        budgets = [p.budget for p in batch]
        stopping = None
        if len(set(budgets)) > 1:  # rows of tasks with shorter answers stop at their own budget
            stopping = StoppingCriteriaList([_RowBudget(width, torch.tensor(budgets))])
        output = model.generate(
            input_ids=input_ids, attention_mask=collated["attention_mask"].to(device),
            max_new_tokens=max(budgets), do_sample=False, num_beams=1, stopping_criteria=stopping,
            pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
        ).cpu()
        counts["batches"] += 1
        counts["padded"] += input_ids.numel()
        counts["steps"] += max(0, output.shape[1] - width - 1)
        rows = [row[: width + budget] for row, budget in zip(output, budgets)]
        texts = decode_generated(self.tokenizer, rows, prompt_width=width)
        eos = self.tokenizer.eos_token_id
        return [(p, text, _kept_tokens(row[width:], eos)) for p, text, row in zip(batch, texts, rows)]

    def evaluate(self, model: nn.Module, device: torch.device | None = None, progress: bool = False,
                 desc: str = "evaluate", dist: DistContext | None = None) -> list[TaskEvaluation]:
        """Generate for every test prompt and score each task (one :class:`TaskEvaluation` per task, in order)."""
        predictions = self.generate(model, device, progress=progress, desc=desc, dist=dist)
        return [score_task(task, preds) for task, preds in zip(self.tasks, predictions)]


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
