"""Researchers' own data: every file format, fields and templates, labels, datasets, one-file streams, docs."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import find_block, run_block

from losia_cl.errors import ConfigError, DataError
from losia_cl.streams import Example, RecordMapping, Stream, Task, load_stream, read_examples, read_records

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "streams.md").read_text()

RECORDS = [{"text": "fine, thanks", "label": 1, "code": "007"}, {"text": "awful", "label": 0, "code": ""}]


def _write(path: Path, records: list[dict]) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif suffix == ".json":
        path.write_text(json.dumps(records, indent=1))
    elif suffix in (".csv", ".tsv"):
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]), delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(records)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".tsv", ".parquet"])
def test_every_format_gives_the_same_examples(tmp_path, suffix):
    path = _write(tmp_path / f"train{suffix}", RECORDS)
    mapping = RecordMapping(prompt_template="Q: {text}\nA:", answer_field="label", labels=["bad", "good"])
    assert read_examples(path, mapping) == (Example("Q: fine, thanks\nA:", "good"), Example("Q: awful\nA:", "bad"))


def test_csv_cells_are_read_as_exact_text(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('\ufeffprompt,answer\n"a, b",007\nNA,\n"two\nlines",1.50\n')
    assert read_records(path) == [{"prompt": "a, b", "answer": "007"}, {"prompt": "NA", "answer": ""},
                                  {"prompt": "two\nlines", "answer": "1.50"}]


def test_json_fields_mixing_types_are_read_value_for_value(tmp_path):
    """datasets would turn the string "a" into the JSON text '"a"' here."""
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"prompt": "p", "answer": "a"}, {"prompt": "q", "answer": 3}]))
    assert read_examples(path) == (Example("p", "a"), Example("q", "3"))


def test_bad_values_name_file_record_line_and_field(tmp_path):
    path = tmp_path / "sst.csv"
    path.write_text('sentence,label\ngood,1\n"multi\nline",0\nmeh,7\n')
    mapping = RecordMapping(prompt_field="sentence", answer_field="label", labels=["negative", "positive"])
    with pytest.raises(DataError) as info:
        read_examples(path, mapping)
    assert str(info.value) == (f"{path}: record 2 (line 5): field 'label' = '7' is not an index into labels (0..1)")
    with pytest.raises(DataError, match=r"record 0 \(line 2\): missing field 'text'; its fields: sentence, label"):
        read_examples(path, RecordMapping(prompt_template="{text}", answer_field="label"))
    jsonl = _write(tmp_path / "x.jsonl", [{"prompt": "a", "answer": "b"}, {"prompt": "c", "answer": 2.5}])
    with pytest.raises(DataError, match=r"x.jsonl: record 1 \(line 2\): field 'answer' must be a string or an integer, "
                                        r"got float: 2.5 .*answer_template"):
        read_examples(jsonl)
    with pytest.raises(DataError, match=r"cannot read as PARQUET: ArrowInvalid"):
        read_records(_write(tmp_path / "broken.jsonl", RECORDS).rename(tmp_path / "broken.parquet"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt_field": "a", "prompt_template": "{a}"}, "prompt_field and prompt_template exclude each other"),
        ({"prompt_template": "{a.b}"}, r"prompt_template: \{a.b\} in '\{a.b\}' must name a record field"),
        ({"prompt_template": "{}"}, "must name a record field"),
        ({"answer_template": "{x"}, "not a valid format string"),
        ({"answer_template": "plain"}, "uses no record field"),
        ({"labels": "ab"}, "labels: expected a non-empty list of strings"),
        ({"labels": ["a", 1]}, r"labels\[1\]: expected a string, got int"),
        ({"answer_template": "{y}", "labels": ["a"]}, "exclude answer_template"),
    ],
)
def test_bad_mappings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RecordMapping(**kwargs)


def test_templates_take_format_specs_and_refuse_nulls():
    mapping = RecordMapping(prompt_template="{x} costs {price:.2f}", answer_template="{n:03d}")
    assert mapping.example({"x": "tea", "price": 2.5, "n": 7}, "r") == Example("tea costs 2.50", "007")
    with pytest.raises(DataError, match="r: field 'price' is missing or null"):
        mapping.example({"x": "tea", "price": None, "n": 7}, "r")
    with pytest.raises(DataError, match=r"r: answer_template '\{n:03d\}': Unknown format code 'd'"):
        mapping.example({"x": "tea", "price": 1, "n": "seven"}, "r")


def test_manifest_mapping_keys_with_defaults_and_task_overrides(tmp_path):
    _write(tmp_path / "a.jsonl", [{"q": "1+1", "a": 2}, {"q": "2+2", "a": 4}])
    _write(tmp_path / "b.csv", [{"sentence": "yes", "label": 1}, {"sentence": "no", "label": 0}])
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        '[defaults]\nmetric = "accuracy"\nmax_new_tokens = 3\nprompt_template = "Q: {q}"\nanswer_field = "a"\n'
        '[[tasks]]\nname = "math"\ntrain = "a.jsonl"\ntest = "a.jsonl"\n'
        '[[tasks]]\nname = "yn"\ntrain = "b.csv"\ntest = "b.csv"\nprompt_field = "sentence"\n'
        'answer_field = "label"\nlabels = ["false", "true"]\n'
    )
    stream = load_stream(manifest)
    assert stream["math"].train == (Example("Q: 1+1", "2"), Example("Q: 2+2", "4"))
    assert stream["yn"].test == (Example("yes", "true"), Example("no", "false"))
    manifest.write_text(manifest.read_text().replace('labels = ["false", "true"]', 'labels = "false,true"'))
    with pytest.raises(ConfigError, match=r"m.toml: key tasks\[1\].labels: expected a non-empty list of strings"):
        load_stream(manifest)


def test_task_from_dataset_fields_templates_labels_and_splits():
    from datasets import Dataset, DatasetDict

    train = Dataset.from_dict({"sentence": [f"s{i}" for i in range(20)], "label": [i % 2 for i in range(20)]})
    task = Task.from_dataset(train, name="sst2", prompt="S: {sentence}", answer="label", labels=["neg", "pos"])
    assert (len(task.train), len(task.test)) == (18, 2)  # a 10 % held-out slice
    assert set(task.train).isdisjoint(task.test) and task.train[0] == Example("S: s0", "neg")
    assert task.max_new_tokens == len("neg") + 1 and task.metric == "accuracy"
    again = Task.from_dataset(train.to_list(), name="other-name", prompt="S: {sentence}", answer="label",
                              labels=["neg", "pos"])
    assert again.test == task.test  # the slice depends on the data only, not on names or types
    test = Dataset.from_dict({"sentence": ["t"], "label": [1]})
    split = Task.from_dataset(DatasetDict(train=train, test=test), prompt="sentence", answer="label",
                              labels=["neg", "pos"])
    assert split.test == (Example("t", "pos"),) and len(split.train) == 20 and split.name == "task"
    with pytest.raises(DataError, match=r"dataset of task 'task': no field 'text'; its fields: sentence, label"):
        Task.from_dataset(train, prompt="text", answer="label")
    with pytest.raises(DataError, match="a DatasetDict needs a 'train' split; it has test"):
        Task.from_dataset(DatasetDict(test=test), prompt="sentence", answer="label")


def test_stream_indexing():
    tasks = tuple(Task(n, (Example("p", "a"),), (Example("q", "b"),), "accuracy", 2) for n in ("a", "b", "c"))
    stream = Stream("s", tasks, "three")
    assert stream[0] is tasks[0] and stream[-1] is tasks[2] and stream["b"] is tasks[1]
    assert stream[1:] == Stream("s", tasks[1:], "three")
    with pytest.raises(IndexError, match="has 3 tasks; index 3 is out of range"):
        stream[3]
    with pytest.raises(TypeError):
        stream[1.0]  # type: ignore[index]


def test_one_data_file_is_a_task_with_a_sibling_or_held_out_test_split(tmp_path):
    records = [{"prompt": f"p{i}", "answer": "x" * (i % 5)} for i in range(30)]
    (tmp_path / "alone").mkdir()
    alone = _write(tmp_path / "alone" / "train.jsonl", records)
    stream = load_stream(str(alone), seed=5)
    assert stream.name == "alone" and stream.task_names == ["alone"]
    task = stream[0]
    assert (len(task.train), len(task.test)) == (27, 3) and task.max_new_tokens == 5
    assert load_stream(alone, seed=9)[0].test == task.test  # the held-out slice ignores the seed
    (tmp_path / "pair").mkdir()
    train = _write(tmp_path / "pair" / "sst2_train.csv", [{"prompt": "a", "answer": "b"}] * 4)
    _write(tmp_path / "pair" / "sst2_test.csv", [{"prompt": "c", "answer": "d"}])
    paired = load_stream(train, max_train_examples=2)
    assert paired.task_names == ["sst2_train"] and paired[0].test == (Example("c", "d"),) and len(paired[0].train) == 2
    with pytest.raises(ConfigError, match=r"data file .* has no option 'num_train'; its options: name, prompt"):
        load_stream(train, num_train=3)


def test_reading_data_touches_no_network_and_imports_stay_lazy(tmp_path):
    for suffix in (".jsonl", ".csv", ".parquet"):
        _write(tmp_path / f"d{suffix}", RECORDS)
    code = (  # every attempt is recorded, even one a library would catch and fall back from
        "import socket, sys\n"
        "attempts = []\n"
        "def refuse(*a, **k):\n"
        "    attempts.append(a[1:] or a)\n"
        "    raise OSError('network touched')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "import losia_cl.streams as s\n"
        "assert 'datasets' not in sys.modules and 'torch' not in sys.modules\n"
        "for suffix in ('.jsonl', '.csv', '.parquet'):\n"
        f"    print(len(s.read_records(r'{tmp_path}/d' + suffix)))\n"
        "print('attempts', attempts)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}  # online mode
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["2", "2", "2", "attempts []"]


def test_cli_runs_one_data_file(tmp_path, monkeypatch, capsys):
    from losia_cl.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sst2").mkdir()
    _write(tmp_path / "sst2" / "train.jsonl", [{"prompt": f"say {w}", "answer": w} for w in ("yes", "no")] * 4)
    _write(tmp_path / "sst2" / "test.jsonl", [{"prompt": "say yes", "answer": "yes"}])
    code = main(["run", "--stream", "sst2/train.jsonl", "--model", "tiny-llama", "--methods", "full", "--max-steps",
                 "1", "--batch-size", "4", "--no-report", "-q"])
    assert code == 0
    run = json.loads((tmp_path / "runs" / "sst2-tiny-llama-seed0" / "run.json").read_text())
    assert run["stream"] == "sst2" and run["tasks"] == ["sst2"] and run["config"]["stream"] == "sst2/train.jsonl"
    assert "| full |" in capsys.readouterr().out


# ---------------------------------------------------------------- the two documented layouts, run end to end
def _doc_block(heading: str, language: str) -> str:
    section = DOCS.split(heading, 1)[1]
    return re.search(rf"```{language}\n(.*?)\n```", section, flags=re.S).group(1)


def _alpaca_files(root: Path) -> Path:
    words = ["apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "ember"]
    rows = [{"instruction": "Write the word in capitals.", "input": w, "output": w.upper()} for w in words]
    rows += [{"instruction": "Say hello.", "input": "", "output": "hello"}]
    for task, name in (("rewrite", "train.jsonl"), ("rewrite", "test.jsonl"), ("extract", "train.json"),
                       ("extract", "test.json")):
        (root / task).mkdir(exist_ok=True)
        _write(root / task / name, rows if "train" in name else rows[:2])
    (root / "instructions.toml").write_text(_doc_block("### Instruction data (Alpaca layout)", "toml"))
    return root / "instructions.toml"


def _sentiment_files(root: Path) -> Path:
    (root / "sst2").mkdir()
    rows = [{"sentence": f"a {'great' if i % 2 else 'dull'} film, take {i}", "label": i % 2} for i in range(12)]
    _write(root / "sst2" / "train.csv", rows)
    _write(root / "sst2" / "test.csv", rows[:3])
    (root / "sentiment.toml").write_text(_doc_block("### A classification set", "toml"))
    return root / "sentiment.toml"


@pytest.mark.parametrize("layout", [_alpaca_files, _sentiment_files])
def test_documented_layouts_run_through_losia_cl_run(tmp_path, layout, monkeypatch):
    from losia_cl.cli import main

    manifest = layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["run", "--stream", manifest.name, "--model", "tiny-llama", "--methods", "losia", "--max-steps", "2",
            "--max-test-examples", "2", "--batch-size", "4", "--max-length", "96", "--no-report", "--out", "run", "-q"]
    assert main(args) == 0
    results = json.loads((tmp_path / "run" / "losia" / "results.json").read_text())
    stream = load_stream(manifest)
    assert results["tasks"] == stream.task_names and len(results["scores"]) == len(stream) + 1
    first = (tmp_path / "run" / "losia" / "predictions" / f"stage1-{stream.task_names[0]}.jsonl").read_text()
    reference = json.loads(first.splitlines()[0])["reference"]
    assert reference == stream[0].test[0].answer and reference in ("APPLE", "negative", "positive")


@pytest.mark.slow
def test_python_example_from_the_docs_runs():
    outcome = run_block(find_block("docs/streams.md", "### From Python: `Task.from_dataset`, `Stream` objects"))
    assert outcome.error is None, outcome.error
    assert outcome.stdout.startswith("sst2 Example(prompt='Repeat the word.\\n")
    run = json.loads((outcome.cwd / "runs" / "from-python" / "run.json").read_text())
    assert run["stream"] == "mine" and run["config"]["stream"] == "mine" and run["tasks"] == ["sst2", "repeat"]


def test_class_label_example_from_the_docs_gives_names_and_the_validation_split():
    outcome = run_block(find_block("docs/streams.md", "`ClassLabel` column"))
    assert outcome.error is None, outcome.error
    assert outcome.stdout == "positive 4 4\n"


# ---------------------------------------------------------------- ClassLabel columns, DatasetDict splits, eval=
def _class_label_dataset(n: int, start: int = 0):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return Dataset.from_dict({"sentence": [f"s{start + i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
                             features=features)


def test_class_label_columns_give_their_names():
    train = _class_label_dataset(10)
    task = Task.from_dataset(train, prompt="{sentence}", answer="label", test=_class_label_dataset(2, 100))
    assert task.train[:2] == (Example("s0", "negative"), Example("s1", "positive"))
    assert task.test == (Example("s100", "negative"), Example("s101", "positive"))
    assert task.max_new_tokens == len("positive") + 1
    numbers = Task.from_dataset(train, prompt="{sentence}", answer="label", class_label_names=False)
    assert {e.answer for e in numbers.train} == {"0", "1"}
    in_prompt = Task.from_dataset(train, prompt="{sentence} is {label}", answer="sentence", test=train)
    assert in_prompt.train[1] == Example("s1 is positive", "s1")
    renamed = Task.from_dataset(train, prompt="{sentence}", answer="label", labels=["bad", "good"], test=train)
    assert renamed.train[:2] == (Example("s0", "bad"), Example("s1", "good"))  # labels= name the answer


def test_dataset_dict_validation_is_the_eval_split_and_eval_can_be_given(caplog):
    from datasets import DatasetDict

    train, validation, test = _class_label_dataset(10), _class_label_dataset(3, 50), _class_label_dataset(2, 100)
    task = Task.from_dataset(DatasetDict(train=train, validation=validation, test=test), prompt="{sentence}",
                             answer="label")
    assert [e.prompt for e in task.eval] == ["s50", "s51", "s52"] and len(task.test) == 2 and len(task.train) == 10
    assert task.eval[1].answer == "positive"
    given = Task.from_dataset(DatasetDict(train=train, eval=validation), prompt="{sentence}", answer="label",
                              eval=test)
    assert [e.prompt for e in given.eval] == ["s100", "s101"] and len(given.test) == 1  # held out of train
    assert Task.from_dataset(train, prompt="{sentence}", answer="label").eval == ()
    with caplog.at_level("WARNING"):
        Task.from_dataset(DatasetDict(train=train, test=test, unsupervised=test), prompt="{sentence}", answer="label")
    assert "split(s) unsupervised left out" in caplog.text


# ---------------------------------------------------------------- one data file: mapping options on the command line
def test_a_missing_field_lists_the_fields_and_names_the_options(tmp_path):
    path = _write(tmp_path / "reviews.jsonl", RECORDS)
    with pytest.raises(DataError) as info:
        load_stream(path.as_posix())
    message = str(info.value)
    assert message.startswith(f"{path}: record 0 (line 1): missing field 'prompt'; its fields: text, label, code; ")
    assert "--prompt-template '{text}\\nAnswer:' --answer-field code" in message and "--labels" in message
    assert "\n" not in message
    with pytest.raises(DataError, match=r"missing field 'answer'; its fields: text, label, code; .*--answer-field code"):
        load_stream(path.as_posix(), prompt="{text}")


def test_documented_mapping_options_run_one_csv_file(tmp_path, monkeypatch):
    import shlex

    from losia_cl.cli import main

    block = _doc_block("### One data file, one task", "bash")
    command = shlex.split(block.replace("\\\n", " ").splitlines()[1])
    assert command[:2] == ["losia-cl", "run"] and "--prompt-template" in command
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "sst2").mkdir(parents=True)
    rows = [{"sentence": f"a {'great' if i % 2 else 'dull'} film, take {i}", "label": i % 2} for i in range(12)]
    _write(tmp_path / "data" / "sst2" / "train.csv", rows)
    _write(tmp_path / "data" / "sst2" / "test.csv", rows[:2])
    assert main([*command[1:], "--max-steps", "1", "--max-test-examples", "2", "--no-report", "--no-retention",
                 "--out", "run", "-q"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "base" / "predictions" / "stage0-sst2.jsonl")
               .read_text().splitlines()]
    assert [(r["prompt"], r["reference"]) for r in records] == [
        ("Sentence: a dull film, take 0\nSentiment:", "negative"), ("Sentence: a great film, take 1\nSentiment:", "positive")]
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert config["prompt_template"] == "Sentence: {sentence}\nSentiment:" and config["labels"] == ["negative", "positive"]


def test_mapping_options_are_refused_for_other_streams_and_checked(capsys):
    from losia_cl.cli import main
    from losia_cl.trainer import RunConfig

    with pytest.raises(ConfigError, match="--prompt-template, --labels: only for a single data file"):
        RunConfig(stream="demo", prompt_template="{text}", labels=("a", "b"))
    with pytest.raises(ConfigError, match="prompt_template"):
        RunConfig(stream="x.jsonl", prompt_template="{0}")
    assert RunConfig(stream="x.csv", labels="neg, pos").labels == ("neg", "pos")
    assert main(["run", "--stream", "demo", "--answer-field", "label"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_command_line_templates_read_escapes():
    from losia_cl.streams.mapping import unescape_template

    assert unescape_template(r"Q: {q}\nA:\t") == "Q: {q}\nA:\t"
    assert unescape_template(r"a\\nb \x") == "a\\nb \\x"  # an escaped backslash, an unknown escape kept
