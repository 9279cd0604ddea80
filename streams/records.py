"""Reading data records from JSON, JSON Lines, CSV/TSV and Parquet files, through ``datasets`` and ``pyarrow``.

JSON and CSV files go through ``datasets.load_dataset(kind, data_files=path, streaming=True)`` (local
files only: ``datasets`` is held offline while it reads, so no network is touched, and streaming
writes nothing to its cache), ``kind`` chosen by the extension:

* ``.csv`` / ``.tsv``: ``csv``, every cell read as text (``"007"`` stays ``"007"``, an empty cell is
  ``""``, ``NA`` stays ``"NA"``), a UTF-8 byte-order mark dropped;
* ``.parquet``: read by ``pyarrow.parquet`` (which ``datasets`` uses for Parquet too), the file's own
  column types.  ``pyarrow`` opens the file itself: ``datasets`` would hand it a Python file object,
  whose buffers ``pyarrow``'s threads may release after the read has returned, and one released
  while the interpreter shuts down aborts the process ("terminate called without an active
  exception");
* anything else (``.json``, ``.jsonl``, TRACE's ``.json`` files holding JSON Lines): ``json``,
  a JSON list of records or one record per line (blank lines skipped).  A field whose values mix
  types (a number here, a string there) is not re-encoded as JSON text, as ``datasets`` would do:
  such a file is read value for value with Python's ``json``.

Every failure raises :class:`~losia_cl.errors.DataError` naming the file and the place in it:
the line and column of a JSON syntax error, the line of a bad JSON Lines record, the record's
index (from 0; with its line for JSON Lines and CSV) and the field for a missing or bad value.
:func:`read_examples` turns records into :class:`~losia_cl.streams.types.Example` with a
:class:`~losia_cl.streams.mapping.RecordMapping` (default: the ``prompt`` and ``answer`` fields).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from losia_cl.errors import DataError

from .mapping import RecordMapping
from .types import Example

logger = logging.getLogger(__name__)

#: The reader per file extension (others: ``json``).
FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
#: Extensions of the files that make a one-task stream on their own (``load_stream("data.jsonl")``).
DATA_SUFFIXES = tuple(FORMATS)


def data_format(path: str | os.PathLike[str]) -> str:
    """How ``path`` is read: ``json``, ``csv`` (the ``datasets`` builders) or ``parquet`` (``pyarrow``)."""
    return FORMATS.get(Path(path).suffix.lower(), "json")


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of a data file, in file order (a dict of fields each).

    Raises :class:`DataError` if the file is missing, unreadable or malformed, or holds no
    record at all (an empty split).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    kind = data_format(path)
    if kind == "json":
        _check_json_depth(path)
    try:
        records = _load(path, kind)
    except DataError:
        raise
    except Exception as err:  # datasets, pyarrow and pandas raise many types; each becomes one DataError
        if kind != "json":
            raise DataError(f"{path}: cannot read as {kind.upper()}: {_one_line(err)}") from None
        records = _read_json_exactly(path)  # names the line and column of a syntax error
        logger.debug("%s: read with Python's json (datasets: %s)", path, _one_line(err))
    if not records:
        raise DataError(f"{path}: no examples (empty split)")
    logger.debug("read %d records from %s", len(records), path)
    return records


def read_examples(
    path: str | os.PathLike[str],
    mapping: RecordMapping | None = None,
    *,
    hint: str | Callable[[list[str]], str] | None = None,
) -> tuple[Example, ...]:
    """All examples of a data file, in file order; ``mapping`` says which fields (default: prompt, answer).

    When the first record lacks a field the mapping reads, the :class:`DataError` lists the fields it
    has and ends with ``hint`` (how to say where prompt and answer are, in the caller's terms; a
    callable gets the record's fields).
    """
    mapping = mapping or RecordMapping()
    path = Path(path)
    records = read_records(path)
    first = records[0]
    if isinstance(first, dict) and any(name not in first for name in mapping.fields):
        text = hint(list(first)) if callable(hint) else hint
        mapping.check_record_fields(first, f"{path}: {record_place(path, 0)}", hint=text)
    return tuple(mapping.example(record, f"{path}: {record_place(path, i)}") for i, record in enumerate(records))


def record_place(path: Path, index: int) -> str:
    """``record 3 (line 5)``: how an error names a record (the line only where it is cheap to know)."""
    line = _line_of_record(path, index)
    return f"record {index}" if line is None else f"record {index} (line {line})"


# ---------------------------------------------------------------- through datasets
#: ``datasets.config`` switches held while a local file loads: offline (otherwise ``load_dataset``
#: sends a download-count request for the packaged builder to the Hub's S3 bucket, even for local files).
_OFFLINE = {"HF_HUB_OFFLINE": True, "HF_DATASETS_OFFLINE": True, "HF_UPDATE_DOWNLOAD_COUNTS": False}


@contextlib.contextmanager
def _local_and_quiet() -> Iterator[None]:
    """``datasets`` offline and its logger at CRITICAL (its errors become one DataError), restored afterwards."""
    from datasets import config

    saved = {name: getattr(config, name) for name in _OFFLINE if hasattr(config, name)}
    library = logging.getLogger("datasets")
    level = library.level
    for name in saved:
        setattr(config, name, _OFFLINE[name])
    library.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        library.setLevel(level)
        for name, value in saved.items():
            setattr(config, name, value)


def _load(path: Path, kind: str) -> list[dict[str, Any]]:
    if kind == "parquet":  # by path, never through a Python file object (see the module's docstring)
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    from datasets import load_dataset

    options: dict[str, Any] = {}
    if kind == "csv":  # every column as text: no type guessing, no NA markers
        from datasets import Features, Value

        separator = _csv_separator(path)
        columns = _csv_header(path, separator)
        options = {"features": Features({name: Value("string") for name in columns}), "na_filter": False,
                   "encoding": "utf-8-sig", "sep": separator}
    elif kind == "json":
        from datasets.packaged_modules.json.json import JsonConfig

        if hasattr(JsonConfig, "on_mixed_types"):  # datasets >= 4: fail instead of re-encoding mixed fields
            options["on_mixed_types"] = None
    with _local_and_quiet():
        dataset = load_dataset(kind, data_files=str(path), split="train", streaming=True, **options)
        return [dict(record) for record in dataset]


def _csv_separator(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _csv_header(path: Path, separator: str) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle, delimiter=separator), None)
    if not header:
        raise DataError(f"{path}: no header line (an empty file?); a CSV file starts with its column names")
    return header


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "(no message)"
    return f"{type(err).__name__}: {text[:300]}"


# ---------------------------------------------------------------- JSON read value for value, precise places
#: Deepest nesting of lists/objects accepted in a JSON file (records are flat; deeper input crashes parsers).
MAX_JSON_DEPTH = 100
#: A JSON string (skipped: brackets inside it do not nest) or one bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _check_json_depth(path: Path) -> None:
    """:class:`DataError` if lists/objects nest deeper than :data:`MAX_JSON_DEPTH` (a cheap scan, no parse)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise DataError(f"{path}: cannot read file: {err.strerror or err}") from None
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        mark = token.group()[0]
        if mark in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise DataError(f"{path}: malformed JSON: lists or objects nested more than {MAX_JSON_DEPTH} deep")
        elif mark != '"':
            depth = max(depth - 1, 0)


def _read_json_exactly(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read file: {err.strerror or err}") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
        return list(records)
    records = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            hint = ""
            if not records and line.strip() == "{":
                hint = " (a JSON file must hold a list of records, a JSON Lines file one record per line)"
            raise DataError(
                f"{path}: malformed JSON Lines record at line {lineno}, column {err.colno}: {err.msg}{hint}"
            ) from None
    return records


def _line_of_record(path: Path, index: int) -> int | None:
    """The line where record ``index`` starts in a JSON Lines or CSV file; None for JSON lists and Parquet."""
    kind = data_format(path)
    try:
        if kind == "csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle, delimiter=_csv_separator(path))
                next(reader, None)  # the header
                start = reader.line_num + 1
                for i, _row in enumerate(reader):
                    if i == index:
                        return start
                    start = reader.line_num + 1
            return None
        if kind == "json":
            with path.open(encoding="utf-8-sig") as handle:
                seen = -1
                for lineno, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    if seen == -1 and line.lstrip().startswith("["):
                        return None  # a JSON list: records are not lines
                    seen += 1
                    if seen == index:
                        return lineno
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None
