"""Eval splits for tuning: a task's own, or a seeded held-out slice of train disjoint from train and test."""

from __future__ import annotations

import pytest

from losia_cl.errors import ConfigError, DataError
from losia_cl.streams import Example, Stream, Task
from losia_cl.streams.heldout import heldout_size, tuning_stream, with_eval_split


def make_task(name: str, n_train: int = 40, n_test: int = 6, n_eval: int = 0, shared: int = 0) -> Task:
    train = [Example(f"{name} train {i}", str(i % 3)) for i in range(n_train)]
    test = [Example(f"{name} test {i}", str(i % 3)) for i in range(n_test)]
    test += train[:shared]  # prompts that (wrongly) occur in both files
    evaluation = [Example(f"{name} eval {i}", str(i % 3)) for i in range(n_eval)]
    return Task(name=name, train=tuple(train), test=tuple(test), metric="accuracy", max_new_tokens=2,
                eval=tuple(evaluation))


def test_a_task_with_an_eval_split_keeps_it_and_its_training_data():
    task = make_task("a", n_eval=5)
    assert with_eval_split(task) is task


def test_held_out_slice_is_seeded_disjoint_from_train_and_test_and_moves_out_of_train():
    task = make_task("a", n_train=40, shared=3)
    split = with_eval_split(task, seed=1)
    assert len(split.eval) == heldout_size(40) == 4
    assert len(split.train) == 36 and set(split.train) | set(split.eval) == set(task.train)
    assert not {e.prompt for e in split.eval} & {e.prompt for e in task.test}
    assert [e.prompt for e in split.train] == [e.prompt for e in task.train if e not in split.eval]  # order kept
    assert with_eval_split(task, seed=1) == split
    assert with_eval_split(task, seed=2).eval != split.eval
    assert len(with_eval_split(task, size=7).eval) == 7


def test_heldout_size_is_ten_percent_between_1_and_100():
    assert [heldout_size(n) for n in (3, 40, 5000)] == [1, 4, 100]


def test_too_little_training_data_names_the_task():
    with pytest.raises(DataError, match="task 'tiny': cannot hold out"):
        with_eval_split(make_task("tiny", n_train=1))


class SealedTask(Task):
    """A task whose test split raises once sealed: proves a code path never reads it."""

    def seal(self) -> SealedTask:
        object.__setattr__(self, "_sealed", True)
        return self

    def __getattribute__(self, name):
        if name == "test" and object.__getattribute__(self, "__dict__").get("_sealed"):
            raise AssertionError("the test split was read")
        return object.__getattribute__(self, name)


def test_tuning_stream_scores_eval_in_place_of_test_and_never_reads_test():
    a = SealedTask(name="a", train=make_task("a").train, test=make_task("a").test, metric="accuracy",
                   max_new_tokens=2, eval=make_task("a", n_eval=5).eval).seal()
    b = make_task("b")
    c = make_task("c", n_eval=2)
    tuning = tuning_stream(Stream("s", (a, b, c)), num_tasks=2, seed=0)
    assert tuning.task_names == ["a", "b"]
    assert tuning.task("a").test == a.eval and tuning.task("a").train == a.train
    assert tuning.task("b").test == with_eval_split(b, seed=0).eval
    with pytest.raises(AssertionError, match="test split was read"):
        _ = a.test


@pytest.mark.parametrize(("num", "message"), [(0, "integer >= 1"), (4, "more than the stream's 3 task")])
def test_bad_number_of_tuning_tasks(num, message):
    with pytest.raises(ConfigError, match=message):
        tuning_stream(Stream("s", (make_task("a"), make_task("b"), make_task("c"))), num_tasks=num)
