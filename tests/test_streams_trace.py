"""The ``trace`` stream over TRACE-layout folders written here into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from losia_cl.errors import ConfigError, DataError, UnknownNameError
from losia_cl.streams import Example, load_stream
from losia_cl.streams.trace import TRACE_TASK_NAMES, load_trace

ALL_TASKS = ["C-STANCE", "FOMC", "MeetingBank", "Py150", "ScienceQA", "NumGLUE-cm", "NumGLUE-ds", "20Minuten"]


def write_split(folder: Path, split: str, task: str, n: int, fmt: str) -> None:
    records = [{"prompt": f"{task} {split} prompt {i}", "answer": f"{task} {split} answer {i}"} for i in range(n)]
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        (folder / f"{split}.json").write_text(json.dumps(records, indent=1))
    elif fmt == "jsonl-in-json":  # JSON Lines content under the released .json name
        (folder / f"{split}.json").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    else:
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")


def write_trace(root: Path, tasks: dict[str, tuple[int, int, str]]) -> Path:
    """One folder per task with train/eval/test files: {task: (n_train, n_test, format)}."""
    for task, (n_train, n_test, fmt) in tasks.items():
        write_split(root / task, "train", task, n_train, fmt)
        write_split(root / task, "eval", task, 3, fmt)
        write_split(root / task, "test", task, n_test, fmt)
    return root


FORMATS = ["json", "jsonl-in-json", "jsonl"]


@pytest.fixture
def trace_root(tmp_path):
    sizes = {name: (20 + i, 10 + i, FORMATS[i % 3]) for i, name in enumerate(ALL_TASKS)}
    return write_trace(tmp_path / "TRACE-data", sizes)


def test_full_stream_order_metrics_and_sizes(trace_root):
    stream = load_stream("trace", data_dir=trace_root)
    assert stream.name == "trace"
    assert stream.task_names == ALL_TASKS == list(TRACE_TASK_NAMES)
    metrics = {t.name: t.metric for t in stream}
    assert metrics == {
        "C-STANCE": "accuracy", "FOMC": "accuracy", "MeetingBank": "rouge_l", "Py150": "edit_similarity",
        "ScienceQA": "letter_accuracy", "NumGLUE-cm": "accuracy", "NumGLUE-ds": "accuracy", "20Minuten": "sari",
    }
    for i, task in enumerate(stream):
        assert (len(task.train), len(task.test)) == (20 + i, 10 + i)
        assert task.train[3] == Example(f"{task.name} train prompt 3", f"{task.name} train answer 3")
        assert task.test[-1].prompt == f"{task.name} test prompt {9 + i}"
        assert task.eval == tuple(Example(f"{task.name} eval prompt {k}", f"{task.name} eval answer {k}") for k in range(3))
    lengths = {t.name: t.max_new_tokens for t in stream}
    assert lengths["FOMC"] <= 16 and lengths["C-STANCE"] <= 16
    assert lengths["MeetingBank"] >= 128 and lengths["20Minuten"] >= 128 and lengths["Py150"] >= 32


def test_subset_and_order_need_only_the_selected_folders(tmp_path):
    root = write_trace(tmp_path, {"FOMC": (5, 4, "json"), "Py150": (6, 3, "jsonl")})
    stream = load_trace(data_dir=str(root), tasks=["Py150", "FOMC"])
    assert stream.task_names == ["Py150", "FOMC"]
    assert [len(t.train) for t in stream] == [6, 5]
    # case-insensitive, comma-separated (as a command line passes it)
    assert load_trace(data_dir=root, tasks="fomc, PY150").task_names == ["FOMC", "Py150"]


def test_data_dir_from_environment(trace_root, monkeypatch):
    monkeypatch.setenv("LOSIA_CL_DATA", str(trace_root))
    assert load_stream("trace", tasks=["FOMC"]).task("FOMC").train[0].prompt == "FOMC train prompt 0"


def test_trace_subfolder_of_the_data_root_is_found(tmp_path):
    write_trace(tmp_path / "TRACE", {"FOMC": (5, 4, "json")})
    assert load_trace(data_dir=tmp_path, tasks=["FOMC"]).task_names == ["FOMC"]


def test_subsampling_is_deterministic_in_seed_and_keeps_file_order(trace_root):
    def fomc(seed, **kw):
        return load_trace(data_dir=trace_root, seed=seed, max_train_examples=7, max_test_examples=4, **kw).task("FOMC")

    a, b, c = fomc(1), fomc(1), fomc(2)
    assert (len(a.train), len(a.test)) == (7, 4)
    assert a.train == b.train and a.test == b.test
    assert a.train != c.train
    indices = [int(ex.prompt.rsplit(" ", 1)[1]) for ex in a.train]
    assert indices == sorted(indices) and len(set(indices)) == 7 and max(indices) < 21
    # the draw of one task does not depend on which other tasks are selected
    alone = load_trace(data_dir=trace_root, seed=1, max_train_examples=7, max_test_examples=4, tasks=["FOMC"])
    assert alone.task("FOMC").train == a.train


def test_limits_above_the_data_size_keep_everything_and_none_means_all(trace_root):
    stream = load_trace(data_dir=trace_root, max_train_examples=500, max_test_examples=None, tasks=["C-STANCE"])
    assert (len(stream.tasks[0].train), len(stream.tasks[0].test)) == (20, 10)


@pytest.mark.parametrize("option, value", [("max_train_examples", 0), ("max_test_examples", -5),
                                           ("max_train_examples", 2.5), ("seed", "x")])
def test_bad_options_are_config_errors_naming_the_option(trace_root, option, value):
    with pytest.raises(ConfigError, match=option):
        load_trace(data_dir=trace_root, **{option: value})


def test_no_data_dir_explains_layout_source_and_how_to_point(monkeypatch):
    monkeypatch.delenv("LOSIA_CL_DATA", raising=False)
    with pytest.raises(DataError) as info:
        load_stream("trace")
    message = str(info.value)
    for needle in ("--data-dir", "LOSIA_CL_DATA", "<root>/<Task>/{train,eval,test}.json",
                   "distributed by its authors", "github.com/BeyonderXX/TRACE", "C-STANCE"):
        assert needle in message


def test_nonexistent_data_dir_names_it(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataError) as info:
        load_trace(data_dir=missing)
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert "LOSIA_CL_DATA" in str(info.value)


def test_missing_task_folders_are_named_unless_excluded(tmp_path):
    root = write_trace(tmp_path, {"FOMC": (5, 4, "json"), "C-STANCE": (5, 4, "json")})
    with pytest.raises(DataError) as info:
        load_trace(data_dir=root)
    message = str(info.value)
    assert str(root / "MeetingBank") in message and str(root / "20Minuten") in message
    assert "found in" in message and "C-STANCE, FOMC" in message and "tasks=" in message
    assert load_trace(data_dir=root, tasks=["C-STANCE", "FOMC"]).task_names == ["C-STANCE", "FOMC"]


def test_missing_split_file_is_named(tmp_path):
    root = write_trace(tmp_path, {"FOMC": (5, 4, "json")})
    (root / "FOMC" / "test.json").unlink()
    with pytest.raises(DataError) as info:
        load_trace(data_dir=root, tasks=["FOMC"])
    assert str(root / "FOMC" / "test.json") in str(info.value) and "file not found" in str(info.value)


def test_malformed_task_file_names_file_and_place(tmp_path):
    root = write_trace(tmp_path, {"FOMC": (5, 4, "json"), "Py150": (5, 4, "jsonl")})
    (root / "FOMC" / "train.json").write_text('[{"prompt": "a", "answer": "b"},\n {"prompt": "c", "answer": }]')
    with pytest.raises(DataError, match=r"line 2, column 28") as info:
        load_trace(data_dir=root, tasks=["FOMC"])
    assert str(root / "FOMC" / "train.json") in str(info.value)
    (root / "Py150" / "test.jsonl").write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "c"}\n')
    with pytest.raises(DataError, match=r"record 1 \(line 2\): field 'answer' is missing or null") as info:
        load_trace(data_dir=root, tasks=["Py150"])
    assert str(root / "Py150" / "test.jsonl") in str(info.value)


def test_empty_split_is_an_error(tmp_path):
    root = write_trace(tmp_path, {"FOMC": (5, 4, "json")})
    (root / "FOMC" / "test.json").write_text("[]")
    with pytest.raises(DataError, match="empty split") as info:
        load_trace(data_dir=root, tasks=["FOMC"])
    assert str(root / "FOMC" / "test.json") in str(info.value)


def test_unknown_task_name_lists_the_known_ones(trace_root):
    with pytest.raises(UnknownNameError) as info:
        load_trace(data_dir=trace_root, tasks=["FOMC", "MMLU"])
    assert info.value.name == "MMLU"
    assert set(ALL_TASKS) == set(info.value.known)
    assert "unknown TRACE task 'MMLU'" in str(info.value) and "20Minuten" in str(info.value)


def test_duplicate_or_empty_selection_is_a_config_error(trace_root):
    with pytest.raises(ConfigError, match="selected twice"):
        load_trace(data_dir=trace_root, tasks=["FOMC", "fomc"])
    with pytest.raises(ConfigError, match="selection is empty"):
        load_trace(data_dir=trace_root, tasks=[])


def test_eval_split_is_optional_and_capped_like_test(trace_root):
    (trace_root / "FOMC" / "eval.json").unlink()
    stream = load_stream("trace", data_dir=trace_root, tasks="FOMC,C-STANCE", max_test_examples=2)
    assert stream.task("FOMC").eval == ()
    assert len(stream.task("C-STANCE").eval) == 2 and len(stream.task("C-STANCE").test) == 2
