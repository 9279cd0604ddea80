"""From a data record (a dict of fields) to an :class:`~losia_cl.streams.types.Example`.

A :class:`RecordMapping` says where prompt and answer come from:

* a field: ``prompt_field="instruction"`` (default ``"prompt"``), ``answer_field="output"``
  (default ``"answer"``);
* or a template, a Python format string over the record's fields:
  ``prompt_template="{instruction}\\n\\n{input}\\n\\nAnswer:"``, ``answer_template="{output}"``;
* plus, for integer class labels, ``labels=["negative", "positive"]``: the answer is
  ``labels[record[answer_field]]``.

The answer (or prompt) field may hold a string or an integer (``3`` becomes ``"3"``, the rule
of :class:`~losia_cl.streams.types.Example`); template fields may hold strings and numbers.
Anything else (a float answer, a null, a list) is a :class:`~losia_cl.errors.DataError` naming
the record and the field; a bad mapping is a :class:`~losia_cl.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from losia_cl.errors import ConfigError, DataError

from .types import Example

#: Keys of a mapping as a manifest (or a single-file stream) spells them.
MAPPING_KEYS = ("prompt_field", "answer_field", "prompt_template", "answer_template", "labels")
#: Largest width or precision a template's format spec may ask for (``{text:>999999999}`` would pad every
#: example to a gigabyte).
MAX_FORMAT_NUMBER = 1000


def unescape_template(text: str) -> str:
    r"""A template typed on a command line: ``\n``, ``\t`` and ``\\`` become a newline, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def template_fields(key: str, template: str) -> tuple[str, ...]:
    """The record fields a format string uses, in order; :class:`ConfigError` for a malformed one."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigError(f"{key}: {template!r} is not a valid format string: {err}") from None
    names = []
    for _text, name, spec, _conversion in parsed:
        if name is None:
            continue
        _check_spec(key, template, name, spec or "")
        if not name.isidentifier():
            raise ConfigError(
                f"{key}: {{{name}}} in {template!r} must name a record field (a plain name: no positional "
                "{}, no attribute or index access; write {{ and }} for literal braces)"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"{key}: {template!r} uses no record field; write its fields as {{name}}")
    return tuple(names)


def _check_spec(key: str, template: str, name: str, spec: str) -> None:
    """A field's format spec may not nest fields or ask for a width or precision above :data:`MAX_FORMAT_NUMBER`."""
    if "{" in spec or "}" in spec:
        raise ConfigError(f"{key}: {{{name}:{spec}}} in {template!r}: a format spec may not hold fields")
    numbers = re.findall(r"[0-9]+", spec)
    if any(len(n.lstrip("0")) > len(str(MAX_FORMAT_NUMBER)) or int(n) > MAX_FORMAT_NUMBER for n in numbers):
        raise ConfigError(f"{key}: {{{name}:{spec}}} in {template!r}: width and precision may be at most "
                          f"{MAX_FORMAT_NUMBER}")


@dataclass(frozen=True)
class RecordMapping:
    """Where a record's prompt and answer come from (see the module's docstring).

    Attributes:
        prompt_field: the field holding the prompt (default ``"prompt"`` unless a template is given).
        answer_field: the field holding the answer, or the label index with ``labels``
            (default ``"answer"`` unless a template is given).
        prompt_template: a format string over the record's fields (excludes ``prompt_field``).
        answer_template: the same for the answer (excludes ``answer_field`` and ``labels``).
        labels: label names; the answer is ``labels[record[answer_field]]``.
    """

    prompt_field: str | None = None
    answer_field: str | None = None
    prompt_template: str | None = None
    answer_template: str | None = None
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for part in ("prompt", "answer"):
            field_name, template = getattr(self, f"{part}_field"), getattr(self, f"{part}_template")
            if field_name is not None and template is not None:
                raise ConfigError(f"{part}_field and {part}_template exclude each other; give one")
            for key, value in ((f"{part}_field", field_name), (f"{part}_template", template)):
                if value is not None and (not isinstance(value, str) or not value):
                    raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
            if template is not None:
                template_fields(f"{part}_template", template)
            elif field_name is None:
                object.__setattr__(self, f"{part}_field", part)
        if self.labels is not None:
            if isinstance(self.labels, str) or not isinstance(self.labels, Sequence) or not self.labels:
                raise ConfigError(f"labels: expected a non-empty list of strings, got {self.labels!r:.60}")
            for i, label in enumerate(self.labels):
                if not isinstance(label, str):
                    raise ConfigError(f"labels[{i}]: expected a string, got {type(label).__name__}: {label!r:.60}")
            if self.answer_template is not None:
                raise ConfigError("labels map the answer_field's integer to a name; they exclude answer_template")
            object.__setattr__(self, "labels", tuple(self.labels))

    @classmethod
    def from_spec(cls, prompt: str, answer: str, labels: Sequence[str] | None = None) -> RecordMapping:
        """The mapping of the Python API's ``prompt=``/``answer=``: a string with ``{`` is a template, else a field."""
        def split(value: object, part: str) -> dict[str, Any]:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{part}: expected a field name or a format string, got {value!r:.60}")
            return {f"{part}_template" if "{" in value else f"{part}_field": value}

        return cls(**split(prompt, "prompt"), **split(answer, "answer"), labels=labels)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every record field the mapping reads."""
        names: list[str] = []
        for part in ("prompt", "answer"):
            template = getattr(self, f"{part}_template")
            used = template_fields(f"{part}_template", template) if template else (getattr(self, f"{part}_field"),)
            names.extend(n for n in used if n not in names)
        return tuple(names)

    def check_columns(self, columns: Sequence[str], where: str, *, hint: str | None = None) -> None:
        """:class:`DataError` (``where``: the file or dataset) if a field the mapping reads is not a column;
        the message lists the columns, then ``hint``."""
        missing = [name for name in self.fields if name not in columns]
        if missing:
            raise DataError(
                f"{where}: no field {', '.join(map(repr, missing))}; its fields: {', '.join(columns) or '(none)'}"
                + (f"; {hint}" if hint else "")
            )

    def check_record_fields(self, record: Mapping[str, Any], place: str, *, hint: str | None = None) -> None:
        """:class:`DataError` naming the first field the mapping reads that ``record`` lacks, the record's
        fields, then ``hint``."""
        for name in self.fields:
            if name not in record:
                raise DataError(f"{place}: missing field {name!r}; its fields: {', '.join(map(str, record)) or '(none)'}"
                                + (f"; {hint}" if hint else ""))

    def example_options(self, fields: Sequence[str]) -> tuple[str, str]:
        """A prompt template and an answer field built from ``fields`` (a record's), for error messages:
        the answer is the mapping's answer field if the record has it, else its last field; the prompt
        template uses the first other field."""
        names = [str(f) for f in fields]
        answer = self.answer_field if self.answer_field in names else (names[-1] if names else "label")
        prompt = next((n for n in names if n != answer), "text")
        return "{" + prompt + "}", answer

    def example(self, record: Mapping[str, Any], place: str) -> Example:
        """The example of one record; :class:`DataError` prefixed with ``place`` (file and record) on bad values."""
        if not isinstance(record, Mapping):
            raise DataError(f"{place}: expected an object with the fields {', '.join(self.fields)}, "
                            f"got {type(record).__name__}")
        return Example(prompt=self._part(record, "prompt", place), answer=self._part(record, "answer", place))

    def _part(self, record: Mapping[str, Any], part: str, place: str) -> str:
        template = getattr(self, f"{part}_template")
        if template is not None:
            values = {name: _template_value(record, name, place) for name in template_fields(part, template)}
            try:
                return template.format_map(values)
            except (ValueError, TypeError) as err:  # a format spec that does not fit the value, e.g. {text:.2f}
                raise DataError(f"{place}: {part}_template {template!r}: {err}") from None
        name = getattr(self, f"{part}_field")
        value = _field(record, name, place)
        if part == "answer" and self.labels is not None:
            return self.labels[_label_index(value, name, len(self.labels), place)]
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)
        hint = ""
        if isinstance(value, float):  # datasets reads a JSON column mixing integers and decimals as floats
            hint = f" (numbers with decimals: format them with {part}_template, e.g. '{{{name}:g}}')"
        raise DataError(f"{place}: field {name!r} must be a string or an integer, got "
                        f"{type(value).__name__}: {value!r:.60}{hint}")


def _field(record: Mapping[str, Any], name: str, place: str) -> Any:
    if name not in record:
        raise DataError(f"{place}: missing field {name!r}; its fields: {', '.join(map(str, record)) or '(none)'}")
    value = record[name]
    if value is None:
        raise DataError(f"{place}: field {name!r} is missing or null")
    return value


def _template_value(record: Mapping[str, Any], name: str, place: str) -> Any:
    value = _field(record, name, place)
    if isinstance(value, (str, int, float)):
        return value
    raise DataError(f"{place}: field {name!r} is a {type(value).__name__}; templates take strings and numbers")


def _label_index(value: Any, name: str, count: int, place: str) -> int:
    """A label index: an integer, or a string of digits (CSV cells are text), in [0, count)."""
    index = None
    if isinstance(value, int) and not isinstance(value, bool):
        index = value
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    if index is None or not 0 <= index < count:
        raise DataError(f"{place}: field {name!r} = {value!r:.40} is not an index into labels (0..{count - 1})")
    return index
