"""Turning examples into model inputs: training sequences, generation prompts, batches.

Rules (the trainer and the evaluator both rely on them):

* **Separate tokenization.**  The prompt and the answer are tokenized
  separately and their ids concatenated: ``prompt_ids + answer_ids + [eos]``.
  This guarantees the prompt/answer boundary (BPE merges never cross it) and
  that the prompt tokens seen in training are exactly the ones generation
  starts from.  The prompt is tokenized with the tokenizer's special tokens
  (a BOS where the tokenizer adds one), the answer without.
* **Chat template (optional).**  With ``chat_template=True`` the prompt is
  rendered with ``tokenizer.apply_chat_template([{"role": "user", "content":
  prompt}], tokenize=False, add_generation_prompt=True)`` and tokenized
  without adding special tokens (the template writes its own); the answer is
  appended as above.  For instruct models whose EOS is the end-of-turn token
  (SmolLM2-Instruct's ``<|im_end|>``) this teaches the model to close its turn.
* **Loss only on the answer.**  ``labels`` is ``-100`` (:data:`IGNORE_INDEX`)
  on every prompt position and equals ``input_ids`` on the answer and EOS.
* **Truncation to ``max_length`` cuts the prompt's start, never the answer.**
  The tokens right after a leading BOS go first (the BOS itself stays).  If
  the answer and EOS do not fit next to the last prompt token (plus the BOS)
  (a causal LM predicts a token from the one before it, so the first answer
  token needs a prompt token in front of it), the answer's *end* is cut
  instead, keeping EOS; the sequence is then exactly ``max_length`` tokens.
* **Padding.**  Training batches are right-padded (``input_ids`` with the pad
  id, ``labels`` with -100, ``attention_mask`` with 0); generation batches are
  left-padded so every prompt ends at the last column and new tokens follow
  directly.  A tokenizer without a pad token pads with its EOS id
  (:func:`pad_token_id`); the attention mask keeps those positions out.

Two paths produce the same features: plain lists of dicts
(:func:`encode_examples`) and a tokenized :class:`datasets.Dataset`
(:func:`tokenize_split`).  torch, transformers and datasets are imported only
inside the functions that need them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from losia_cl.errors import ConfigError

from .types import Example, Task

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import torch

logger = logging.getLogger(__name__)

#: Label value the loss ignores (PyTorch's ``CrossEntropyLoss`` default).
IGNORE_INDEX = -100

Features = dict[str, Any]


def eos_token_id(tokenizer: Any) -> int:
    """The tokenizer's EOS id; :class:`ConfigError` if it has none."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ConfigError("the tokenizer has no EOS token; set tokenizer.eos_token before training")
    return int(eos)


def pad_token_id(tokenizer: Any) -> int:
    """The id to pad with: the tokenizer's pad id, or its EOS id when it has no pad token."""
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else eos_token_id(tokenizer)


def encode_prompt(tokenizer: Any, prompt: str, *, chat_template: bool = False) -> list[int]:
    """The token ids a generation for ``prompt`` starts from (no truncation)."""
    if chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("chat_template=True but the tokenizer has no chat template")
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def encode_answer(tokenizer: Any, answer: str) -> list[int]:
    """The answer's token ids followed by EOS."""
    return list(tokenizer(answer, add_special_tokens=False)["input_ids"]) + [eos_token_id(tokenizer)]


def _check_max_length(max_length: object, minimum: int) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < minimum:
        raise ConfigError(f"max_length must be an integer ≥ {minimum}, got {max_length!r}")
    return max_length


def _keep_prompt_end(prompt_ids: list[int], budget: int, bos_id: int | None) -> list[int]:
    """The last ``budget`` tokens of a prompt; a leading BOS is kept (and counted) when ``budget ≥ 2``."""
    if len(prompt_ids) <= budget:
        return prompt_ids
    if budget <= 0:
        return []
    if bos_id is not None and prompt_ids[0] == bos_id and budget >= 2:
        return prompt_ids[:1] + prompt_ids[len(prompt_ids) - budget + 1 :]
    return prompt_ids[len(prompt_ids) - budget :]


def _join(
    prompt_ids: list[int], answer_ids: list[int], max_length: int, bos_id: int | None
) -> tuple[Features, bool, bool]:
    """Concatenate and truncate; returns the features and whether prompt / answer were cut."""
    prompt_cut = answer_cut = False
    if len(prompt_ids) + len(answer_ids) > max_length:
        has_bos = bos_id is not None and len(prompt_ids) >= 2 and prompt_ids[0] == bos_id
        min_prompt = min(len(prompt_ids), 2 if has_bos else 1)  # [BOS +] the last prompt token
        budget = max_length - len(answer_ids)
        if budget < min_prompt:  # the answer alone is too long: cut its end, keep EOS
            answer_ids = answer_ids[: max_length - min_prompt - 1] + answer_ids[-1:]
            budget = min_prompt
            answer_cut = True
        prompt_cut = budget < len(prompt_ids)
        prompt_ids = _keep_prompt_end(prompt_ids, budget, bos_id)
    input_ids = prompt_ids + answer_ids
    features = {
        "input_ids": input_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + list(answer_ids),
        "attention_mask": [1] * len(input_ids),
    }
    return features, prompt_cut, answer_cut


def _bos_id(tokenizer: Any) -> int | None:
    bos = getattr(tokenizer, "bos_token_id", None)
    return None if bos is None else int(bos)


def encode_training_example(
    tokenizer: Any,
    prompt: str,
    answer: str,
    *,
    max_length: int,
    chat_template: bool = False,
) -> Features:
    """``input_ids``, ``labels`` and ``attention_mask`` (lists) of one training sequence.

    The sequence is ``prompt_ids + answer_ids + [eos]`` with labels -100 on
    the prompt; see the module docstring for the truncation rule.
    """
    max_length = _check_max_length(max_length, 3)
    features, _, _ = _join(
        encode_prompt(tokenizer, prompt, chat_template=chat_template),
        encode_answer(tokenizer, answer),
        max_length,
        _bos_id(tokenizer),
    )
    return features


def encode_generation_prompt(
    tokenizer: Any,
    prompt: str,
    *,
    max_length: int | None = None,
    chat_template: bool = False,
) -> Features:
    """``input_ids`` and ``attention_mask`` (lists) of one prompt to generate from.

    With ``max_length`` the prompt keeps its last ``max_length`` tokens (the
    start is cut, a leading BOS is kept, as in training).
    """
    ids = encode_prompt(tokenizer, prompt, chat_template=chat_template)
    if max_length is not None:
        max_length = _check_max_length(max_length, 1)
        ids = _keep_prompt_end(ids, max_length, _bos_id(tokenizer))
    return {"input_ids": ids, "attention_mask": [1] * len(ids)}


def encode_examples(
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_length: int | None,
    chat_template: bool = False,
    for_generation: bool = False,
) -> list[Features]:
    """Features of many examples as a list of dicts (the path without :mod:`datasets`).

    Training features (``for_generation=False``) hold ``input_ids``,
    ``labels``, ``attention_mask``, truncated to ``max_length`` as the module
    docstring says.  Generation features hold ``input_ids``,
    ``attention_mask`` and ``index`` (the example's position in
    ``examples``); the prompt keeps its last ``max_length`` tokens (``None``:
    no limit) — pass the training length minus the task's
    ``max_new_tokens`` to leave room for the answer.  How many sequences
    were truncated is logged as a warning.
    """
    if for_generation:
        limit = None if max_length is None else _check_max_length(max_length, 1)
        bos = _bos_id(tokenizer)
        rows, cut = [], 0
        for i, ex in enumerate(examples):
            full = encode_prompt(tokenizer, ex.prompt, chat_template=chat_template)
            kept = full if limit is None else _keep_prompt_end(full, limit, bos)
            cut += len(kept) < len(full)
            rows.append({"input_ids": kept, "attention_mask": [1] * len(kept), "index": i})
        if cut:
            logger.warning("max_length %s: cut the start of %d of %d generation prompts", max_length, cut, len(rows))
        return rows
    max_length = _check_max_length(max_length, 3)
    bos = _bos_id(tokenizer)
    encoded: list[Features] = []
    prompts_cut = answers_cut = 0
    for ex in examples:
        features, prompt_cut, answer_cut = _join(
            encode_prompt(tokenizer, ex.prompt, chat_template=chat_template),
            encode_answer(tokenizer, ex.answer),
            max_length,
            bos,
        )
        prompts_cut += prompt_cut
        answers_cut += answer_cut
        encoded.append(features)
    if prompts_cut or answers_cut:
        logger.warning(
            "max_length %d: cut the start of %d of %d prompts and the end of %d answers",
            max_length, prompts_cut, len(encoded), answers_cut,
        )
    return encoded


def tokenize_split(
    tokenizer: Any,
    task: Task,
    split: str,
    *,
    max_length: int,
    chat_template: bool = False,
    for_generation: bool | None = None,
) -> datasets.Dataset:
    """A task's split as a tokenized :class:`datasets.Dataset`.

    ``for_generation`` defaults to ``split == "test"``.  The columns are those
    of :func:`encode_examples`.  Generation prompts keep their last
    ``max_length - task.max_new_tokens`` tokens (at least 1), so prompt and
    answer fit in ``max_length`` as in training; generation datasets also keep
    the ``prompt`` and ``answer`` strings (scorers need the references, ``sari`` the
    sources).  Use :func:`collate_for_training` / :func:`collate_for_generation`
    as the DataLoader's ``collate_fn``.
    """
    import datasets

    examples = task.split(split)
    generate = split == "test" if for_generation is None else for_generation
    limit = max(1, max_length - task.max_new_tokens) if generate else max_length
    rows = encode_examples(tokenizer, examples, max_length=limit, chat_template=chat_template, for_generation=generate)
    if generate:
        rows = [{**row, "prompt": ex.prompt, "answer": ex.answer} for row, ex in zip(rows, examples)]
    return datasets.Dataset.from_list(rows)


def collate_for_training(features: Sequence[Features], *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad training features into ``input_ids``, ``labels``, ``attention_mask`` tensors.

    ``input_ids`` pad with ``pad_token_id``, ``labels`` with -100,
    ``attention_mask`` with 0.  Other keys are dropped.
    """
    import torch

    width = max(len(f["input_ids"]) for f in features)
    batch = {"input_ids": [], "labels": [], "attention_mask": []}
    for f in features:
        extra = width - len(f["input_ids"])
        batch["input_ids"].append(list(f["input_ids"]) + [pad_token_id] * extra)
        batch["labels"].append(list(f["labels"]) + [IGNORE_INDEX] * extra)
        batch["attention_mask"].append(list(f["attention_mask"]) + [0] * extra)
    return {key: torch.tensor(rows, dtype=torch.long) for key, rows in batch.items()}


def collate_for_generation(features: Sequence[Features], *, pad_token_id: int) -> dict[str, Any]:
    """Left-pad generation features into ``input_ids`` and ``attention_mask`` tensors.

    Every prompt ends in the last column, so ``model.generate`` appends new
    tokens right after it; the generated tokens of row ``i`` are
    ``output[i, input_ids.shape[1]:]`` (see :func:`decode_generated`).  Other
    keys (``index``, ``prompt``, ``answer``) are passed through as lists.
    """
    import torch

    width = max(len(f["input_ids"]) for f in features)
    ids, mask = [], []
    for f in features:
        extra = width - len(f["input_ids"])
        ids.append([pad_token_id] * extra + list(f["input_ids"]))
        mask.append([0] * extra + list(f["attention_mask"]))
    batch: dict[str, Any] = {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
    }
    for key in features[0]:
        if key not in batch:
            batch[key] = [f[key] for f in features]
    return batch


def decode_generated(tokenizer: Any, sequences: Any, *, prompt_width: int) -> list[str]:
    """The generated text of each row of ``model.generate``'s output, stripped.

    ``prompt_width`` is the width of the left-padded ``input_ids`` batch;
    tokens after the first EOS and special tokens are dropped.
    """
    eos = eos_token_id(tokenizer)
    texts = []
    for row in sequences:
        new = [int(t) for t in row[prompt_width:]]
        if eos in new:
            new = new[: new.index(eos)]
        texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    return texts
