"""Custom streams from TOML manifests: the format, the options, and every way a manifest can be bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from losia_cl.errors import ConfigError, DataError, UnknownNameError
from losia_cl.streams import Example, load_manifest, load_stream

MANIFEST = """
name = "tickets"
description = "three ticket tasks"

[defaults]
metric = "accuracy"
max_new_tokens = 8

[[tasks]]
name = "priority"
train = "data/priority/train.jsonl"
test = "data/priority/test.json"

[[tasks]]
name = "summary"
train = "data/summary/train.json"
test = "data/summary/test.jsonl"
metric = "rouge_l"
max_new_tokens = 128

[[tasks]]
name = "team"
train = "data/team.jsonl"
test = "data/team.jsonl"
max_new_tokens = 4
"""


def records(tag: str, n: int) -> list[dict[str, str]]:
    return [{"prompt": f"{tag} prompt {i}", "answer": f"{tag} answer {i}"} for i in range(n)]


def write(path: Path, rows: list[dict[str, str]], jsonl: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(map(json.dumps, rows)) if jsonl else json.dumps(rows))


@pytest.fixture
def manifest(tmp_path) -> Path:
    folder = tmp_path / "streams"
    write(folder / "data/priority/train.jsonl", records("priority-train", 12), jsonl=True)
    write(folder / "data/priority/test.json", records("priority-test", 5), jsonl=False)
    write(folder / "data/summary/train.json", records("summary-train", 9), jsonl=False)
    write(folder / "data/summary/test.jsonl", records("summary-test", 4), jsonl=True)
    write(folder / "data/team.jsonl", records("team", 6), jsonl=True)
    path = folder / "tickets.toml"
    path.write_text(MANIFEST)
    return path


def test_manifest_loads_tasks_with_defaults_and_overrides(manifest):
    stream = load_stream(str(manifest))
    assert (stream.name, stream.description) == ("tickets", "three ticket tasks")
    assert stream.task_names == ["priority", "summary", "team"]
    assert [(t.metric, t.max_new_tokens) for t in stream] == [("accuracy", 8), ("rouge_l", 128), ("accuracy", 4)]
    assert [(len(t.train), len(t.test)) for t in stream] == [(12, 5), (9, 4), (6, 6)]
    assert stream.task("summary").test[3] == Example("summary-test prompt 3", "summary-test answer 3")


def test_paths_are_relative_to_the_manifest_not_the_working_directory(manifest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_stream(manifest.relative_to(tmp_path)).task_names == ["priority", "summary", "team"]


def test_name_defaults_to_the_file_stem(manifest):
    text = manifest.read_text().replace('name = "tickets"\n', "")
    other = manifest.with_name("support-v2.toml")
    other.write_text(text)
    assert load_manifest(other).name == "support-v2"


def test_subset_reads_only_the_chosen_files_and_subsamples(manifest):
    (manifest.parent / "data/summary/train.json").unlink()
    stream = load_stream(manifest, tasks="team,priority", max_train_examples=4, max_test_examples=2, seed=3)
    assert stream.task_names == ["team", "priority"]
    assert [(len(t.train), len(t.test)) for t in stream] == [(4, 2), (4, 2)]
    again = load_stream(manifest, tasks="team,priority", max_train_examples=4, max_test_examples=2, seed=3)
    assert again == stream


def test_unknown_task_in_selection_names_the_manifest(manifest):
    with pytest.raises(UnknownNameError) as info:
        load_stream(manifest, tasks=["priority", "billing"])
    assert str(manifest) in str(info.value) and "known tasks: priority, summary, team" in str(info.value)


def expect_config_error(manifest: Path, text: str, *needles: str) -> None:
    manifest.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_stream(manifest)
    message = str(info.value)
    assert str(manifest) in message
    for needle in needles:
        assert needle in message, message


def test_invalid_toml_names_file_and_line(manifest):
    expect_config_error(manifest, 'name = "x"\n\n[[tasks]\nname = "a"\n', "invalid TOML", "line 3")


def test_missing_tasks_key(manifest):
    expect_config_error(manifest, 'name = "x"\n', "key tasks: missing")


def test_unknown_top_level_key_is_a_typo(manifest):
    expect_config_error(manifest, MANIFEST.replace("[[tasks]]", "[[task]]", 1), "key task: unknown key")


def test_unknown_task_key(manifest):
    expect_config_error(manifest, MANIFEST.replace('max_new_tokens = 128', 'max_tokens = 128'),
                        "key tasks[1].max_tokens: unknown key", "max_new_tokens")


def test_missing_task_key_names_index_and_key(manifest):
    expect_config_error(manifest, MANIFEST.replace('train = "data/summary/train.json"\n', ""),
                        "key tasks[1].train: missing")


def test_missing_metric_without_defaults_hints_at_defaults(manifest):
    expect_config_error(manifest, MANIFEST.replace('metric = "accuracy"\n', "", 1),
                        "key tasks[0].metric: missing (or in [defaults])")


def test_bad_generation_length(manifest):
    expect_config_error(manifest, MANIFEST.replace("max_new_tokens = 4", "max_new_tokens = 0"),
                        "key tasks[2].max_new_tokens: expected an integer from 1 to 4096, got 0")
    expect_config_error(manifest, MANIFEST.replace("max_new_tokens = 4", "max_new_tokens = 1000000000"),
                        "key tasks[2].max_new_tokens: expected an integer from 1 to 4096, got 1000000000")
    expect_config_error(manifest, MANIFEST.replace("max_new_tokens = 4", 'max_new_tokens = "4"'),
                        "key tasks[2].max_new_tokens")


def test_tasks_must_be_an_array_of_tables(manifest):
    expect_config_error(manifest, 'tasks = ["a", "b"]\n', "key tasks: expected an array of tables")


def test_duplicate_task_name(manifest):
    expect_config_error(manifest, MANIFEST.replace('name = "team"', 'name = "priority"'),
                        "key tasks[2].name: task 'priority' is listed twice")


def test_unknown_metric_names_file_key_and_known_metrics(manifest):
    manifest.write_text(MANIFEST.replace('metric = "rouge_l"', 'metric = "rouge"'))
    with pytest.raises(UnknownNameError) as info:
        load_stream(manifest)
    message = str(info.value)
    assert str(manifest) in message and "tasks[1].metric" in message
    assert "unknown metric 'rouge'" in message and "rouge_l" in message and "edit_similarity" in message


def test_missing_data_file_names_the_file_and_the_manifest_key(manifest):
    missing = manifest.parent / "data/priority/test.json"
    missing.unlink()
    with pytest.raises(DataError) as info:
        load_stream(manifest)
    message = str(info.value)
    assert str(missing) in message and "file not found" in message
    assert str(manifest) in message and "tasks[0].test" in message


def test_bad_record_in_a_data_file_names_file_and_record(manifest):
    bad = manifest.parent / "data/team.jsonl"
    bad.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": ["a"], "answer": "b"}\n')
    with pytest.raises(DataError) as info:
        load_stream(manifest)
    message = str(info.value)
    assert str(bad) in message and "record 1 (line 2): field 'prompt' must be a string or an integer, got list" in message
    assert "tasks[2].train" in message


def test_missing_manifest_file(tmp_path):
    with pytest.raises(DataError, match="stream manifest not found"):
        load_stream(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("name", "problem"),
    [("../../../../etc/x", "contains a path separator"), ("a/b", "contains a path separator"),
     ("..", "contains '..'"), ("a\\u0000b", "contains a NUL character")],
)
def test_task_names_that_would_leave_the_run_folder_are_refused(manifest, name, problem):
    expect_config_error(manifest, MANIFEST.replace('name = "team"', f'name = "{name}"'),
                        "key tasks[2].name: task name", problem)


def test_task_names_equal_but_for_case_are_refused(manifest):
    expect_config_error(manifest, MANIFEST.replace('name = "team"', 'name = "Priority"'),
                        "key tasks[2].name: task 'Priority' collides with 'priority'")


def test_deeply_nested_toml_is_a_one_line_error(manifest):
    expect_config_error(manifest, "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply")


def test_optional_eval_split_is_read_capped_and_named_on_error(manifest):
    write(manifest.parent / "data/priority/eval.jsonl", records("priority-eval", 7), jsonl=True)
    text = manifest.read_text().replace(
        'test = "data/priority/test.json"', 'test = "data/priority/test.json"\neval = "data/priority/eval.jsonl"')
    manifest.write_text(text)
    stream = load_stream(manifest, max_test_examples=3)
    assert len(stream.task("priority").eval) == 3 and stream.task("summary").eval == ()
    assert all(ex.prompt.startswith("priority-eval") for ex in stream.task("priority").eval)
    manifest.write_text(text.replace("data/priority/eval.jsonl", "data/priority/missing.jsonl"))
    with pytest.raises(DataError, match=r"missing.jsonl.*key tasks\[0\]\.eval"):
        load_stream(manifest)
