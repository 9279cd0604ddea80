"""Hostile or damaged run folders: `losia-cl report` exits 2 with one line naming the file, and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_report_data import snapshot, write_run

from losia_cl.cli import main

DEEP = 100_000


def _set_raw(path: Path, key: str, raw: str) -> None:
    """Replace the value of top-level ``key`` by the JSON text ``raw`` (numbers json.dumps cannot write)."""
    data = json.loads(path.read_text())
    data[key] = "@@RAW@@"
    path.write_text(json.dumps(data).replace('"@@RAW@@"', raw))


def _edit(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _add_method(run: Path, name: str, like: str = "lora") -> None:
    """A finished method folder ``name`` (a copy of ``like``), listed in run.json."""
    folder = run / name
    folder.mkdir(parents=True)
    data = json.loads((run / like / "results.json").read_text())
    data["method"] = name
    (folder / "results.json").write_text(json.dumps(data))
    _edit(run / "run.json", lambda d: d["methods"].append(name))


CASES = {
    "json nested 100,000 deep": (
        lambda run: (run / "lora" / "results.json").write_text("[" * DEEP + "]" * DEEP),
        "lora/results.json", "nested too deeply"),
    "value nested 100,000 deep inside the object": (
        lambda run: _set_raw(run / "lora" / "results.json", "method_options", "[" * DEEP + "]" * DEEP),
        "lora/results.json", "nested too deeply"),
    "run.json nested 100,000 deep": (
        lambda run: (run / "run.json").write_text('{"format": ' + "[" * DEEP + "]" * DEEP + "}"),
        "run.json", "nested too deeply"),
    "method options nested 500 deep": (
        lambda run: _edit(run / "lora" / "results.json", lambda d: d.__setitem__("method_options", _nested(500))),
        "lora/results.json", "'method_options' is nested more than 64 levels deep"),
    "trainable_parameters = 10**400": (
        lambda run: _set_raw(run / "lora" / "results.json", "trainable_parameters", str(10**400)),
        "lora/results.json", "'trainable_parameters' = an integer of 401 digits is out of range"),
    "total_parameters = 10**400": (
        lambda run: _set_raw(run / "losia" / "results.json", "total_parameters", str(10**400)),
        "losia/results.json", "'total_parameters' = an integer of 401 digits is out of range"),
    "peak memory = 2**64": (
        lambda run: _set_raw(run / "losia" / "results.json", "peak_memory_bytes", str(2**64)),
        "losia/results.json", "'peak_memory_bytes' = 18446744073709551616 is out of range"),
    "a score of 10**400": (
        lambda run: _set_raw(run / "lora" / "results.json", "scores", "[[0.1, 0.2], [%d, 0.3], [0.5, 0.6]]" % 10**400),
        "lora/results.json", "'scores[1][0]' must be a finite number, got an integer of 401 digits"),
    "an integer of 5,000 digits": (
        lambda run: _set_raw(run / "lora" / "results.json", "seed", "7" * 5000),
        "lora/results.json", "not readable JSON: Exceeds the limit (4300 digits)"),
    "train_seconds = NaN": (
        lambda run: _set_raw(run / "lora" / "results.json", "train_seconds", "NaN"),
        "lora/results.json", "'train_seconds' must be a finite number, got nan"),
    "train_seconds = 1e400 (infinite)": (
        lambda run: _set_raw(run / "lora" / "results.json", "train_seconds", "1e400"),
        "lora/results.json", "'train_seconds' must be a finite number, got inf"),
    "truncated results.json": (
        lambda run: (run / "lora" / "results.json").write_bytes(
            (run / "lora" / "results.json").read_bytes()[:700]),
        "lora/results.json", "not valid JSON (line"),
    "garbage bytes": (
        lambda run: (run / "lora" / "results.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50),
        "lora/results.json", "not UTF-8 text (byte 0 is 0x89)"),
    "empty results.json": (
        lambda run: (run / "lora" / "results.json").write_bytes(b""),
        "lora/results.json", "the file is empty"),
    "truncated run.json": (
        lambda run: (run / "run.json").write_text((run / "run.json").read_text()[:90]),
        "run.json", "not valid JSON"),
    "method folders x_y and x/y": (
        lambda run: (_add_method(run, "x_y"), _add_method(run, "x/y")),
        "run.json", "'methods[3]' = 'x/y' is not a folder name"),
    "a method named ..": (
        lambda run: _edit(run / "run.json", lambda d: d["methods"].append("..")),
        "run.json", "'methods[2]' = '..' is not a folder name"),
    "method folders x_y and 'x y'": (
        lambda run: (_add_method(run, "x_y"), _add_method(run, "x y")),
        "", "methods 'x_y' (", "and 'x y' (", "would write the same report files"),
    "method folders lora and LoRA": (
        lambda run: _add_method(run, "LoRA"),
        "", "methods 'lora' (", "and 'LoRA' (", "would write the same report files"),
    "overlap coverage of text": (
        lambda run: _edit(run / "losia" / "results.json", lambda d: next(iter(
            d["subnet_overlap"]["per_matrix"].values()))["coverage"].__setitem__(0, "most")),
        "losia/results.json", ".coverage[0]' must be a finite number, got 'most'"),
    "overlap per-layer value of a list": (
        lambda run: _edit(run / "losia" / "results.json",
                          lambda d: d["subnet_overlap"]["per_layer"]["0"].__setitem__("mean_ratio", [1])),
        "losia/results.json", "'subnet_overlap.per_layer.0.mean_ratio' must be a finite number or null"),
    "stability config of a list": (
        lambda run: _edit(run / "lora" / "results.json", lambda d: d["stability"].__setitem__("config", [4])),
        "lora/results.json", "'stability.config' must be an object"),
    "a huge list in the message is cut": (
        lambda run: _edit(run / "run.json", lambda d: d.__setitem__("tasks", list(range(100_000)))),
        "run.json", "'tasks' must be a list of non-empty strings, got [0, 1, 2, 3, 4, 5, ...]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_run_folder_fails_in_one_line_with_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    damage, file, *expected = CASES[case]
    run = write_run(tmp_path / "run", methods=("losia", "lora"), tasks=("a", "b"))
    damage(run)
    before = snapshot(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "out" / "r.html")]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("losia-cl: error: ") and err.count("\n") == 1 and len(err) < 400, err
    assert "Traceback" not in err and captured.out == ""
    if file:
        assert f"{run}/{file}" in err or (file == "run.json" and f"{run / 'run.json'}" in err), err
    for part in expected:
        assert part in err, (part, err)
    assert snapshot(tmp_path) == before, "a failed report must not write anything"


def test_optional_parts_set_to_null_still_give_a_report(tmp_path: Path) -> None:
    from losia_cl.report import build_report

    run = write_run(tmp_path / "run", methods=("losia", "lora"), tasks=("a", "b"))
    _edit(run / "losia" / "results.json", lambda d: d["stability"].__setitem__("config", None))
    _edit(run / "lora" / "results.json", lambda d: d.update(eval_seconds=None, seed=None, method_options=None))
    files = build_report([run], out=tmp_path / "out" / "r.html")
    text = files.html.read_text()
    assert "Weight stability after the last stage (means over matrices)<" in text  # no ", k = ..." without config
