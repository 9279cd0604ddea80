"""The embedded ``demo`` stream: deterministic, held-out, balanced, and every answer follows its task's rule."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from losia_cl.errors import ConfigError, UnknownNameError
from losia_cl.streams import load_stream
from losia_cl.streams.demo import CATEGORIES

CATEGORY_OF = {word: name for name, words in CATEGORIES for word in words}
PROMPT = re.compile(r"Items: 1\. (\w+) 2\. (\w+) 3\. (\w+) 4\. (\w+)\nQuestion: (.+)\nAnswer:")


def solve(prompt: str) -> tuple[str, str]:
    """(task, answer) of a demo prompt, computed independently of the generator."""
    match = PROMPT.fullmatch(prompt)
    assert match, prompt
    words, question = list(match.groups()[:4]), match.group(5)
    kinds = [CATEGORY_OF[w] for w in words]
    assert sorted(kinds) == ["animal", "color", "fruit", "tool"]
    if m := re.fullmatch(r"Which item is an? (\w+)\?", question):
        return "category", words[kinds.index(m.group(1))]
    if m := re.fullmatch(r"What is item (\d)\?", question):
        return "position", words[int(m.group(1)) - 1]
    if m := re.fullmatch(r"Which item comes after (\w+)\?", question):
        return "successor", words[words.index(m.group(1)) + 1]
    if m := re.fullmatch(r"Which item comes before (\w+)\?", question):
        return "predecessor", words[words.index(m.group(1)) - 1]
    if m := re.fullmatch(r"Is (\w+) on the list\?", question):
        assert m.group(1) in CATEGORY_OF
        return "check", "true" if m.group(1) in words else "false"
    raise AssertionError(question)


@pytest.fixture(scope="module")
def demo():
    return load_stream("demo")


def test_vocabulary_has_48_words_each_in_one_category():
    assert len(CATEGORY_OF) == sum(len(words) for _, words in CATEGORIES) == 48
    assert sorted(name for name, _ in CATEGORIES) == ["animal", "color", "fruit", "tool"]


def test_defaults(demo):
    assert demo.name == "demo"
    assert demo.task_names == ["category", "position", "successor", "predecessor"]
    for task in demo:
        assert (len(task.train), len(task.test), len(task.eval)) == (64, 16, 24)
        assert task.metric == "accuracy"
        assert 1 <= task.max_new_tokens <= 8


def test_every_answer_follows_its_task_rule(demo):
    for task in demo:
        for example in task.train + task.test + task.eval:
            assert solve(example.prompt) == (task.name, example.answer)


def test_train_eval_and_test_prompts_are_disjoint_and_unique(demo):
    all_prompts = set()
    for task in demo:
        train, test, evaluation = ({ex.prompt for ex in split} for split in (task.train, task.test, task.eval))
        assert (len(train), len(test), len(evaluation)) == (len(task.train), len(task.test), len(task.eval))
        assert not train & test and not train & evaluation and not test & evaluation
        all_prompts |= train | test | evaluation
    assert len(all_prompts) == 4 * (64 + 16 + 24)  # questions differ per task, so no prompt is shared


def test_same_seed_same_examples_different_seed_different(demo):
    again = load_stream("demo")
    assert again == demo
    other = load_stream("demo", seed=1)
    for a, b in zip(demo, other):
        assert a.test != b.test and a.train != b.train
        assert len({ex.prompt for ex in a.test} & {ex.prompt for ex in b.test}) < len(a.test) // 2


def test_every_answer_is_a_listed_word_and_labels_are_balanced(demo):
    for task in demo:
        for example in task.train + task.test:
            assert example.answer in re.findall(r"\d\. (\w+)", example.prompt)
    # category: every kind asked equally often; position: every number; successor/predecessor: every place
    asked = Counter(re.search(r"is an? (\w+)\?", ex.prompt).group(1) for ex in demo.task("category").train)
    assert set(asked) == {"animal", "color", "fruit", "tool"} and max(asked.values()) - min(asked.values()) <= 1
    numbers = Counter(re.search(r"item (\d)\?", ex.prompt).group(1) for ex in demo.task("position").train)
    assert sorted(numbers) == ["1", "2", "3", "4"] and max(numbers.values()) - min(numbers.values()) <= 1
    for name, places in (("successor", [1, 2, 3]), ("predecessor", [0, 1, 2])):
        found = Counter(re.findall(r"\d\. (\w+)", ex.prompt).index(ex.answer) for ex in demo.task(name).test)
        assert sorted(found) == places and max(found.values()) - min(found.values()) <= 1


def test_prompts_share_one_surface_form(demo):
    for task in demo:
        for example in task.train + task.test:
            lines = example.prompt.split("\n")
            assert [line.split(" ")[0] for line in lines] == ["Items:", "Question:", "Answer:"]
            assert lines[1].endswith("?") and lines[2] == "Answer:"


def test_sizes_subset_and_stable_test_set():
    small = load_stream("demo", num_train=10, num_test=6, tasks=["predecessor", "category"])
    assert small.task_names == ["predecessor", "category"]
    assert [(len(t.train), len(t.test)) for t in small] == [(10, 6), (10, 6)]
    bigger = load_stream("demo", num_train=50, num_test=6, tasks="category")
    assert set(bigger.task("category").test) == set(small.task("category").test)
    assert bigger.task("category").eval == small.task("category").eval  # drawn before train, so stable too


def test_bad_options():
    with pytest.raises(UnknownNameError) as info:
        load_stream("demo", tasks=["category", "sorting"])
    assert "unknown demo task 'sorting'" in str(info.value) and "successor" in str(info.value)
    with pytest.raises(ConfigError, match="num_train must be a positive integer"):
        load_stream("demo", num_train=0)
    with pytest.raises(ConfigError, match="num_test must be a positive integer"):
        load_stream("demo", num_test=None)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        load_stream("demo", seed=1.5)
    with pytest.raises(ConfigError, match="at most 20000"):
        load_stream("demo", num_train=20_000, num_test=1)
    with pytest.raises(ConfigError, match="num_eval must be a positive integer"):
        load_stream("demo", num_eval=0)


def test_the_extra_check_task_loads_only_by_name():
    stream = load_stream("demo", tasks="check,position", num_train=12, num_test=6)
    assert stream.task_names == ["check", "position"]
    check = stream.task("check")
    assert Counter(ex.answer for ex in check.train) == {"true": 6, "false": 6}
    for example in check.train + check.test + check.eval:
        assert solve(example.prompt) == ("check", example.answer)
