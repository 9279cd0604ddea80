"""Reading ``{"prompt": str, "answer": str}`` records from JSON and JSON Lines files.

Two layouts are accepted, whatever the file's extension:

* a JSON list of records (``[{"prompt": ..., "answer": ...}, ...]``), the
  layout TRACE releases;
* JSON Lines: one record per line, blank lines skipped.

A file whose first non-blank character is ``[`` is read as a JSON list, any
other file as JSON Lines.  Every failure raises
:class:`~losia_cl.errors.DataError` naming the file and the place in it: the
line and column of a JSON syntax error, the line of a bad JSON Lines record,
the record's index and field for a missing or non-string ``prompt``/``answer``.
Keys other than ``prompt`` and ``answer`` are ignored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from losia_cl.errors import DataError

from .types import Example

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("prompt", "answer")


def read_examples(path: str | os.PathLike[str]) -> tuple[Example, ...]:
    """All examples of a JSON or JSON Lines file, in file order.

    Raises :class:`DataError` if the file is missing, unreadable, malformed,
    holds a bad record, or holds no record at all (an empty split).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read file: {err.strerror or err}") from None

    stripped = text.lstrip()
    if stripped.startswith("["):
        examples = _read_json_list(path, text)
    else:
        examples = _read_json_lines(path, text)
    if not examples:
        raise DataError(f"{path}: no examples (empty split)")
    logger.debug("read %d examples from %s", len(examples), path)
    return examples


def _read_json_list(path: Path, text: str) -> tuple[Example, ...]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: malformed JSON: lists or objects nested too deeply") from None
    if not isinstance(records, list):  # pragma: no cover - the text starts with "["
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    return tuple(_example(path, record, f"record {i}") for i, record in enumerate(records))


def _read_json_lines(path: Path, text: str) -> tuple[Example, ...]:
    examples = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        index = len(examples)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            hint = ""
            if index == 0 and lineno == 1 and line.strip() == "{":
                hint = " (a JSON file must hold a list of records, a JSON Lines file one record per line)"
            raise DataError(
                f"{path}: malformed JSON Lines record at line {lineno}, column {err.colno}: {err.msg}{hint}"
            ) from None
        except RecursionError:
            raise DataError(f"{path}: malformed JSON Lines record at line {lineno}: nested too deeply") from None
        examples.append(_example(path, record, f"record {index} (line {lineno})"))
    return tuple(examples)


def _example(path: Path, record: object, place: str) -> Example:
    if not isinstance(record, dict):
        raise DataError(
            f"{path}: {place}: expected an object with keys 'prompt' and 'answer', got {type(record).__name__}"
        )
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise DataError(f"{path}: {place}: missing field {name!r}")
        value = record[name]
        if not isinstance(value, str):
            raise DataError(
                f"{path}: {place}: field {name!r} must be a string, got {type(value).__name__}: {value!r:.60}"
            )
    return Example(prompt=record["prompt"], answer=record["answer"])
