"""Reading prompt/answer records from JSON and JSON Lines files, and every way such a file can be bad."""

from __future__ import annotations

import json

import pytest

from losia_cl.errors import DataError
from losia_cl.streams import Example, read_examples


def test_json_list_is_read_in_order(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"prompt": "p0", "answer": "a0"}, {"prompt": "p1", "answer": "a1", "id": 7}]))
    assert read_examples(path) == (Example("p0", "a0"), Example("p1", "a1"))


def test_json_lines_skip_blank_lines_and_ignore_the_extension(tmp_path):
    path = tmp_path / "test.json"  # TRACE-style name, JSON Lines content
    path.write_text('{"prompt": "x", "answer": "1"}\n\n  \n{"prompt": "y", "answer": "2"}\n')
    assert read_examples(path) == (Example("x", "1"), Example("y", "2"))


def test_utf8_bom_and_non_ascii_text_are_read(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes("\ufeff".encode() + json.dumps({"prompt": "态度：", "answer": "支持"}, ensure_ascii=False).encode())
    assert read_examples(path) == (Example("态度：", "支持"),)


def test_json_lines_end_a_record_only_at_a_newline(tmp_path):
    path = tmp_path / "train.jsonl"  # U+2028, U+0085 and a form feed inside strings are text, not line ends
    records = [{"prompt": "a\u2028b", "answer": "c\x85"}, {"prompt": "d\x0ce", "answer": "f"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert read_examples(path) == (Example("a\u2028b", "c\x85"), Example("d\x0ce", "f"))


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('[\n  {"prompt": "a", "answer": "b"},\n  {"prompt": "c" "answer": "d"}\n]\n')
    with pytest.raises(DataError) as info:
        read_examples(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3, column 18" in message


def test_malformed_json_lines_record_names_its_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "a", "answer": "b"}\n\n{"prompt": "c", "answer": "d"}\n{"prompt": "e", "answer": }\n')
    with pytest.raises(DataError) as info:
        read_examples(path)
    assert str(path) in str(info.value)
    assert "line 4" in str(info.value)


def test_missing_answer_names_file_record_and_field(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"prompt": "a", "answer": "b"}] * 2 + [{"prompt": "c"}]))
    with pytest.raises(DataError) as info:
        read_examples(path)
    message = str(info.value)
    assert str(path) in message and "record 2" in message and "field 'answer' is missing or null" in message


def test_non_string_prompt_names_record_line_and_type(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "a", "answer": "b"}\n\n{"prompt": ["x"], "answer": "b"}\n')
    with pytest.raises(DataError) as info:
        read_examples(path)
    message = str(info.value)
    assert str(path) in message
    assert "record 1 (line 3)" in message
    assert "'prompt' must be a string or an integer, got list" in message


def test_integer_answers_become_their_text_even_beside_strings(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "c", "answer": 12}\n')
    assert read_examples(path) == (Example("a", "b"), Example("c", "12"))


def test_non_string_answer_in_json_list(tmp_path):
    path = tmp_path / "test.json"
    path.write_text(json.dumps([{"prompt": "a", "answer": 3.5}]))
    with pytest.raises(DataError, match=r"record 0: field 'answer' must be a string or an integer, got float: 3.5 \(numbers with decimals"):
        read_examples(path)


def test_record_that_is_not_an_object(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"prompt": "a", "answer": "b"}, ["a", "b"]]))
    with pytest.raises(DataError, match=r"record 1: expected an object with the fields prompt, answer, got list"):
        read_examples(path)


@pytest.mark.parametrize("content", ["", "\n\n", "[]", "  [ ]\n"])
def test_empty_split_is_an_error(tmp_path, content):
    path = tmp_path / "train.json"
    path.write_text(content)
    with pytest.raises(DataError, match="empty split") as info:
        read_examples(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found") as info:
        read_examples(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)


def test_a_file_holding_one_object_is_one_record(tmp_path):
    """As with datasets' JSON loader: a pretty-printed object is a one-record file."""
    path = tmp_path / "train.json"
    path.write_text('{\n  "prompt": "a",\n  "answer": "b"\n}\n')
    assert read_examples(path) == (Example("a", "b"),)



def test_pretty_printed_object_then_a_broken_one_names_the_line_with_a_hint(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{\n  "prompt": "a",\n  "answer": "b"\n}\n{"prompt": "c" "answer": "d"}\n')
    with pytest.raises(DataError, match=r"line 1, column 2.*a JSON file must hold a list of records"):
        read_examples(path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[" * 100_000 + "]" * 100_000, "malformed JSON: lists or objects nested more than 100 deep"),
        ('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested more than 100 deep"),
        ('{"prompt": "' + "[" * 100_000 + '", "answer": "a"}\n' + '{"prompt": [[1]], "answer": "b"}\n',
         "record 1 (line 2): field 'prompt'"),  # brackets inside strings do not count
    ],
)
def test_deeply_nested_json_is_a_data_error(tmp_path, content, needle):
    path = tmp_path / "deep.json"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_examples(path)
    assert str(path) in str(info.value) and needle in str(info.value)
