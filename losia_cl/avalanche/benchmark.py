"""A losia-cl :class:`~losia_cl.streams.Stream` as an Avalanche benchmark: one experience per task.

The legacy classification generators (``nc_benchmark``, ``dataset_benchmark``...) need class
targets; text tasks have none, so the benchmark is built with ``benchmark_from_datasets`` from
one :class:`~avalanche.benchmarks.utils.AvalancheDataset` per task and split, then given task
labels with ``with_task_labels``.  Every item is a dict of token-id lists (the tokenization
rules of :mod:`losia_cl.streams.tokenization`: prompt and answer tokenized separately, labels
-100 on the prompt) plus ``targets_task_labels``; the datasets carry :func:`collate_text_batch`
as their ``collate_fn``.

Every experience also carries the losia-cl task it came from (``experience.text_task``), its
split (``experience.text_split``) and how it was tokenized (``experience.text_encoding``), so
that :class:`~losia_cl.avalanche.CausalLMStrategy` can score it by greedy generation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.generic_scenario import CLScenario
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.benchmarks.utils.data_attribute import TaskLabels

from losia_cl.errors import ConfigError
from losia_cl.streams.tokenization import collate_for_training, encode_examples, pad_token_id
from losia_cl.streams.types import Stream, Task

__all__ = ["TextEncoding", "TextFeatures", "as_benchmark", "collate_text_batch", "experience_task"]

#: Name Avalanche gives the task-label data attribute (added to every dict item).
TASK_LABELS = "targets_task_labels"


@dataclass(frozen=True)
class TextEncoding:
    """How a benchmark's examples were tokenized; generation-time evaluation uses the same rules."""

    max_length: int
    chat_template: bool
    pad_token_id: int


class TextFeatures(torch.utils.data.Dataset):
    """Tokenized training features of one split of one task (each item a fresh dict)."""

    def __init__(self, features: Sequence[dict[str, Any]]) -> None:
        self.features = list(features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # A copy: AvalancheDataset adds the task label to the dict it is given.
        return dict(self.features[index])


def collate_text_batch(features: Sequence[dict[str, Any]], *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` (-100 on prompt and padding), ``attention_mask``, plus ``task_labels``.

    The padding is :func:`losia_cl.streams.tokenization.collate_for_training`'s, so a batch is
    exactly what ``losia-cl run`` feeds the model; ``task_labels`` (one per example) is added when
    the items carry Avalanche task labels.
    """
    batch = collate_for_training(features, pad_token_id=pad_token_id)
    if features and all(TASK_LABELS in f for f in features):
        batch["task_labels"] = torch.tensor([int(f[TASK_LABELS]) for f in features], dtype=torch.long)
    return batch


def _dataset(task: Task, split: str, label: int, tokenizer: Any, encoding: TextEncoding) -> AvalancheDataset:
    examples = task.split(split)
    features = encode_examples(tokenizer, examples, max_length=encoding.max_length,
                               chat_template=encoding.chat_template)
    return AvalancheDataset(
        [TextFeatures(features)],
        data_attributes=[TaskLabels([label] * len(features))],
        collate_fn=functools.partial(collate_text_batch, pad_token_id=encoding.pad_token_id),
    )


def as_benchmark(
    stream: Stream,
    tokenizer: Any,
    *,
    max_length: int = 256,
    chat_template: bool = False,
) -> CLScenario:
    """The stream as an Avalanche benchmark with ``train_stream`` and ``test_stream``.

    Experience ``i`` of each stream holds task ``i`` (task label ``i``); its dataset yields
    tokenized dicts (``input_ids``, ``labels``, ``attention_mask``, ``targets_task_labels``), the
    test split tokenized with its answers too so that Avalanche's loss/accuracy metrics can run
    on it.  ``max_length`` and ``chat_template`` mean what they mean for ``losia-cl run``; they
    are stored on every experience (``text_encoding``) for the strategy's generation-time scoring.
    The benchmark also keeps the source stream as ``benchmark.text_stream``.
    """
    if not isinstance(stream, Stream):
        raise ConfigError(f"as_benchmark: expected a losia_cl.streams.Stream, got {type(stream).__name__}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
        raise ConfigError(f"as_benchmark: max_length must be an integer >= 3, got {max_length!r}")
    encoding = TextEncoding(max_length=max_length, chat_template=bool(chat_template),
                            pad_token_id=pad_token_id(tokenizer))
    splits = {
        split: [_dataset(task, split, label, tokenizer, encoding) for label, task in enumerate(stream)]
        for split in ("train", "test")
    }
    benchmark = with_task_labels(benchmark_from_datasets(**splits))
    for split in ("train", "test"):
        for experience, task in zip(benchmark.streams[split], stream):
            experience.text_task = task
            experience.text_split = split
            experience.text_encoding = encoding
    benchmark.text_stream = stream
    return benchmark


def experience_task(experience: Any) -> tuple[Task, TextEncoding]:
    """The losia-cl task an experience evaluates (its ``test`` examples are the experience's split) and its encoding."""
    task = getattr(experience, "text_task", None)
    encoding = getattr(experience, "text_encoding", None)
    if task is None or encoding is None:
        raise ConfigError(
            "this experience carries no text task: build the benchmark with losia_cl.avalanche.as_benchmark(stream, "
            "tokenizer) so that CausalLMStrategy knows which prompts to generate for"
        )
    if getattr(experience, "text_split", "test") == "train":
        task = replace(task, test=task.train)
    return task, encoding
