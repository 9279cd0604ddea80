"""The built-in general probe: short prompts with short expected answers, and the rule for a right answer.

``general_probe.jsonl`` (written for this project, shipped in the package) holds one record per line:
``{"kind": "fact" | "arithmetic" | "phrase" | "instruction", "prompt": str, "answers": [str, ...]}``;
the first answer is the reference continuation, the others are accepted alternatives (``"7"`` or
``"seven"``).  A generated answer is right when, after stripping whitespace and taking its first line, it
starts with one of the answers (case-insensitive) and the next character, if any, is not a letter or a
digit: ``"Paris."`` and ``"Paris, the capital"`` are right, ``"Parisian"`` and ``"42"`` (for ``"4"``) are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from losia_cl.errors import DataError

PROBE_FILE = "general_probe.jsonl"
KINDS = ("fact", "arithmetic", "phrase", "instruction")


@dataclass(frozen=True)
class ProbeItem:
    """One probe prompt, its accepted answers (the first is the reference) and its kind."""

    prompt: str
    answers: tuple[str, ...]
    kind: str

    @property
    def reference(self) -> str:
        return self.answers[0]


def load_probe(path: str | Path | None = None) -> tuple[ProbeItem, ...]:
    """The probe items of ``path`` (default: the built-in probe); :class:`DataError` names a bad line."""
    if path is None:
        text = resources.files(__package__).joinpath(PROBE_FILE).read_text(encoding="utf-8")
        where = PROBE_FILE
    else:
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            item = ProbeItem(record["prompt"], tuple(record["answers"]), record["kind"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{where}:{number}: not a probe record ({error})") from None
        if not item.prompt.strip() or not item.answers or not all(a.strip() for a in item.answers):
            raise DataError(f"{where}:{number}: empty prompt or answer")
        if item.kind not in KINDS:
            raise DataError(f"{where}:{number}: kind {item.kind!r} is not one of {', '.join(KINDS)}")
        items.append(item)
    if not items:
        raise DataError(f"{where}: the probe is empty")
    return tuple(items)


def is_right(prediction: str, answers: tuple[str, ...] | list[str]) -> bool:
    """Whether a generated ``prediction`` gives one of ``answers`` (see the module docstring)."""
    lines = prediction.strip().splitlines()
    text = lines[0].strip().lower() if lines else ""
    for answer in answers:
        expected = answer.strip().lower()
        if text.startswith(expected) and (len(text) == len(expected) or not text[len(expected)].isalnum()):
            return True
    return False
