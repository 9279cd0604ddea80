"""as_benchmark: one experience per task, train and test streams, task labels, our features and collate."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("avalanche")

from losia_cl.avalanche import as_benchmark, collate_text_batch, experience_task  # noqa: E402
from losia_cl.errors import ConfigError  # noqa: E402
from losia_cl.models.tiny import byte_tokenizer  # noqa: E402
from losia_cl.streams import load_stream  # noqa: E402
from losia_cl.streams.tokenization import collate_for_training, encode_examples  # noqa: E402

TASKS = ["category", "position", "check"]


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def stream():
    return load_stream("demo", num_train=6, num_test=3, seed=0, tasks=TASKS)


@pytest.fixture(scope="module")
def benchmark(stream, tokenizer):
    return as_benchmark(stream, tokenizer, max_length=48)


def test_one_experience_per_task_in_train_and_test_streams_with_task_labels(benchmark, stream):
    assert set(benchmark.streams) == {"train", "test"}
    assert benchmark.text_stream is stream
    for name, split in (("train", "train"), ("test", "test")):
        experiences = list(benchmark.streams[name])
        assert len(experiences) == len(TASKS)
        for index, (experience, task) in enumerate(zip(experiences, stream)):
            assert experience.current_experience == index
            assert experience.task_label == index and experience.task_labels == [index]
            assert experience.origin_stream.name == name
            assert experience.text_task is task and experience.text_split == split
            assert len(experience.dataset) == len(task.split(split))
            assert experience.text_encoding.max_length == 48 and experience.text_encoding.chat_template is False


def test_items_are_the_trainers_features_plus_the_task_label(benchmark, stream, tokenizer):
    experience = benchmark.train_stream[1]
    expected = encode_examples(tokenizer, stream.tasks[1].train, max_length=48)
    for i, features in enumerate(expected):
        item = experience.dataset[i]
        assert item == {**features, "targets_task_labels": 1}
    assert experience.dataset[0] is not experience.dataset[0]  # fresh dicts: Avalanche writes into them


def test_collate_pads_like_the_trainer_and_adds_task_labels(benchmark, tokenizer):
    dataset = benchmark.train_stream[2].dataset
    items = [dataset[i] for i in range(3)]
    batch = dataset.collate_fn(items)
    reference = collate_for_training(items, pad_token_id=tokenizer.pad_token_id)
    assert set(batch) == {"input_ids", "labels", "attention_mask", "task_labels"}
    for key, value in reference.items():
        assert torch.equal(batch[key], value)
    assert batch["task_labels"].tolist() == [2, 2, 2]
    assert collate_text_batch([{k: v for k, v in items[0].items() if k != "targets_task_labels"}],
                              pad_token_id=0).keys() == {"input_ids", "labels", "attention_mask"}


def test_collate_function_survives_avalanche_dataset_operations(benchmark):
    data = benchmark.train_stream[0].dataset
    collate = data.collate_fn
    mixed = data.train().subset([0, 1]).concat(benchmark.train_stream[1].dataset.eval())
    assert mixed.collate_fn is collate
    batch = mixed.collate_fn([mixed[i] for i in range(len(mixed))])
    assert batch["task_labels"].tolist() == [0, 0] + [1] * len(benchmark.train_stream[1].dataset)


def test_experience_task_gives_the_split_to_generate_for(benchmark, stream):
    task, encoding = experience_task(benchmark.test_stream[0])
    assert task is stream.tasks[0] and encoding.max_length == 48
    train_task, _ = experience_task(benchmark.train_stream[0])
    assert train_task.test == stream.tasks[0].train and train_task.name == stream.tasks[0].name


def test_bad_arguments_are_config_errors(stream, tokenizer):
    with pytest.raises(ConfigError, match="max_length"):
        as_benchmark(stream, tokenizer, max_length=2)
    with pytest.raises(ConfigError, match="Stream"):
        as_benchmark(list(stream), tokenizer)
    with pytest.raises(ConfigError, match="as_benchmark"):
        experience_task(object())
