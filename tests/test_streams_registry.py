"""Stream registry, data-type validation, metric names, and the cheap import of losia_cl.streams."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from losia_cl.errors import ConfigError, DataError, UnknownNameError
from losia_cl.streams import Example, Stream, Task, describe_streams, known_metrics, load_stream, stream_options
from losia_cl.streams.metric_names import check_metric


def test_describe_streams_lists_the_builtin_streams_in_one_line_each():
    described = dict(describe_streams())
    assert set(described) >= {"demo", "trace"}
    assert [name for name, _ in describe_streams()] == sorted(described)
    for name, line in described.items():
        assert line and "\n" not in line, name
    assert "LOSIA_CL_DATA" in described["trace"]


def test_unknown_stream_lists_known_streams_and_mentions_manifests():
    with pytest.raises(UnknownNameError) as info:
        load_stream("trace5000")
    assert "demo" in info.value.known and "trace" in info.value.known
    assert "unknown stream 'trace5000'" in str(info.value) and ".toml" in str(info.value)


def test_unknown_option_lists_the_stream_options():
    assert stream_options("demo") == ["num_train", "num_test", "num_eval", "seed", "tasks"]
    assert stream_options("trace") == ["data_dir", "tasks", "max_train_examples", "max_test_examples", "seed"]
    assert stream_options("my/stream.toml") == ["tasks", "max_train_examples", "max_test_examples", "seed"]
    with pytest.raises(UnknownNameError):
        stream_options("nope")
    with pytest.raises(ConfigError) as info:
        load_stream("demo", num_trian=3)
    assert "'num_trian'" in str(info.value) and "num_train, num_test, num_eval, seed, tasks" in str(info.value)


def test_stream_names_are_case_insensitive():
    assert load_stream("DEMO", num_train=2, num_test=2).name == "demo"


def test_metric_names_are_the_scorer_names():
    from losia_cl.metrics import scorer_names

    names = scorer_names()
    assert names and known_metrics() == sorted(names)
    assert all(check_metric(name) == name for name in names)
    with pytest.raises(UnknownNameError) as info:
        check_metric("f1", where="file.toml: key x")
    assert str(info.value) == f"file.toml: key x: unknown metric 'f1'; known metrics: {', '.join(sorted(names))}"


def make_task(name="t", **changes):
    fields = dict(name=name, train=[Example("p", "a")], test=[Example("q", "b")], metric="accuracy",
                  max_new_tokens=4)
    fields.update(changes)
    return Task(**fields)


def test_task_stores_tuples_and_is_frozen():
    task = make_task()
    assert task.train == (Example("p", "a"),) and task.split("test") == (Example("q", "b"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.metric = "bleu"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Example("p", "a").answer = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes, error, needle",
    [
        ({"train": []}, DataError, "task 't': the train split is empty"),
        ({"test": ()}, DataError, "task 't': the test split is empty"),
        ({"train": [("p", "a")]}, DataError, "train[0] must be an Example, got tuple"),
        ({"metric": "exact_match"}, UnknownNameError, "task 't': unknown metric 'exact_match'"),
        ({"max_new_tokens": 0}, DataError, "max_new_tokens must be an integer from 1 to 4096, got 0"),
        ({"max_new_tokens": True}, DataError, "max_new_tokens must be an integer from 1 to 4096"),
        ({"max_new_tokens": 10**9}, DataError, "max_new_tokens must be an integer from 1 to 4096, got 1000000000"),
        ({"name": " "}, DataError, "task name ' ' contains characters outside the safe set"),
        ({"name": ""}, DataError, "task name '' must not be empty"),
        ({"name": "../../../../etc/x"}, DataError, "contains a path separator"),
        ({"name": "a/b"}, DataError, "task name 'a/b' contains a path separator"),
        ({"name": "a\\b"}, DataError, "contains a path separator"),
        ({"name": ".."}, DataError, "task name '..' contains '..'"),
        ({"name": "a\x00b"}, DataError, "task name 'a\\x00b' contains a NUL character"),
        ({"name": ".hidden"}, DataError, "outside the safe set"),
        ({"name": "tab\there"}, DataError, "outside the safe set"),
        ({"name": "x" * 121}, DataError, "is longer than 120 bytes"),
    ],
)
def test_task_validation(changes, error, needle):
    with pytest.raises(error) as info:
        make_task(**changes)
    assert needle in str(info.value)


def test_example_takes_integers_as_their_text_and_refuses_other_non_strings():
    assert Example("2 + 1 =", 3) == Example("2 + 1 =", "3")  # type: ignore[arg-type]
    assert Example(7, "x").prompt == "7"  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"Example.answer must be a string or an integer, got float: 2.5 .*f'\{x:g\}'"):
        Example("p", 2.5)  # type: ignore[arg-type]
    for value in (True, None, ["a"]):
        with pytest.raises(DataError, match=f"Example.answer must be a string or an integer, got {type(value).__name__}"):
            Example("p", value)  # type: ignore[arg-type]


def test_stream_validation_and_lookup():
    stream = Stream("s", [make_task("a"), make_task("b")])
    assert stream.task_names == ["a", "b"] and len(stream) == 2 and [t.name for t in stream] == ["a", "b"]
    with pytest.raises(UnknownNameError, match=r"stream 's': unknown task 'c'; known tasks: a, b"):
        stream.task("c")
    with pytest.raises(DataError, match="task name 'a' appears twice"):
        Stream("s", [make_task("a"), make_task("a")])
    with pytest.raises(DataError, match="task name 'FOMC' collides with 'fomc'"):
        Stream("s", [make_task("fomc"), make_task("FOMC")])
    with pytest.raises(DataError, match="has no tasks"):
        Stream("s", [])


def test_importing_streams_does_not_import_heavy_libraries():
    code = (
        "import sys, losia_cl.streams\n"
        "losia_cl.streams.load_stream('demo', num_train=4, num_test=2)\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'avalanche') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["C-STANCE", "NumGLUE-cm", "20Minuten", "Py150", "my task v1.2", "c++", "支持", "_x"])
def test_task_names_of_real_streams_are_accepted(name):
    assert make_task(name).name == name
