"""Report files are written atomically and as a group: a full disk leaves the earlier report intact."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
from test_report_data import snapshot, write_run

import losia_cl.files
from losia_cl.cli import main
from losia_cl.errors import LosiaError, WriteError
from losia_cl.files import atomic_write_files


class _FillingDisk:
    """``os.fdopen`` whose files accept ``budget`` bytes in all, then write part of a chunk and fail with ENOSPC."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.failed_after: int | None = None
        self._fdopen = os.fdopen

    def __call__(self, fd: int, mode: str = "r", *args, **kwargs) -> _Handle:
        return _Handle(self._fdopen(fd, mode, *args, **kwargs), self)


class _Handle:
    def __init__(self, handle: io.BufferedWriter, disk: _FillingDisk) -> None:
        self.handle, self.disk = handle, disk

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.disk.budget:
            self.handle.write(data[: self.disk.budget // 2])  # a partial temporary file is on disk
            self.handle.flush()
            self.disk.failed_after, self.disk.budget = self.disk.budget, 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.budget -= len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def fileno(self) -> int:
        return self.handle.fileno()

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _report_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_full_disk_leaves_the_previous_report_intact_and_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fraction: float
) -> None:
    first = write_run(tmp_path / "first", seed=0, methods=("losia", "lora"))
    second = write_run(tmp_path / "second", seed=1, methods=("losia", "lora"))
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(first), "--out", str(out)]) == 0
    capsys.readouterr()
    before = snapshot(tmp_path / "out")
    disk = _FillingDisk(int(fraction * _report_bytes(out.parent)))
    monkeypatch.setattr(losia_cl.files.os, "fdopen", disk)

    assert main(["report", str(second), "--out", str(out)]) == 2

    monkeypatch.undo()
    assert disk.failed_after is not None, "the simulated disk never filled"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("losia-cl: error: ")
    assert str(out.parent) in err and "No space left on device" in err and "MiB free in" in err
    # every old file as it was (same names, same bytes), no temporary or truncated file left behind
    assert snapshot(tmp_path / "out") == before
    # the files that were being written are named: one of the report's own files
    named = err.split("losia-cl: error: ", 1)[1].split(": cannot write it", 1)[0]
    assert Path(named).parent == out.parent and Path(named).name in before


def test_full_disk_on_a_new_folder_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    run = write_run(tmp_path / "run", methods=("lora",), tasks=("a", "b"))
    before = snapshot(tmp_path)
    monkeypatch.setattr(losia_cl.files.os, "fdopen", _FillingDisk(50_000))
    assert main(["report", str(run), "--out", str(tmp_path / "new" / "deeper" / "r.html")]) == 2
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "new").exists(), "folders made for the report are removed again"
    assert "cannot write it" in capsys.readouterr().err


def test_atomic_write_files_replaces_all_or_raises_write_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    assert atomic_write_files({a: b"one", b: b"two"}) == [a, b]
    assert a.read_bytes() == b"one" and b.read_bytes() == b"two"
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(WriteError) as info:
        atomic_write_files({a: b"new", blocker / "c.txt": b"three"})
    assert str(blocker / "c.txt") in str(info.value) and isinstance(info.value, LosiaError)
    assert isinstance(info.value, OSError) and info.value.errno in (errno.ENOTDIR, errno.EEXIST)
    assert a.read_bytes() == b"one", "a failure before the renames changes no file"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.txt", "file", "sub"]


def test_old_trainer_import_path_still_works(tmp_path: Path) -> None:
    from losia_cl.trainer.files import atomic_write_json, atomic_write_text

    atomic_write_json(tmp_path / "x.json", {"a": 1})
    atomic_write_text(tmp_path / "y.txt", "é")
    assert (tmp_path / "x.json").read_text() == '{\n  "a": 1\n}\n' and (tmp_path / "y.txt").read_text() == "é"
