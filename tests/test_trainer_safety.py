"""The run folder is safe: nothing written outside it or into a folder that is not ours, nothing before the
input is validated, one process at a time, no leftovers, the user's umask, one-line errors for user mistakes."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from losia_cl import cli
from losia_cl.errors import ConfigError, WriteError
from losia_cl.trainer import RunConfig, run_experiment
from losia_cl.trainer.files import atomic_write, atomic_write_text, inside
from losia_cl.trainer.run_folder import RunLock

TINY = dict(model="tiny-llama", methods=("full",), tasks=("category",), max_train_examples=4, max_test_examples=2,
            batch_size=2, eval_batch_size=4, max_length=48, progress=False, report=False, lr={"full": 1e-3})
TINY_ARGS = ["run", "--model", "tiny-llama", "--methods", "full", "--tasks", "category", "--max-train-examples", "4",
             "--max-test-examples", "2", "--batch-size", "2", "--eval-batch-size", "4", "--max-length", "48",
             "--lr", "full=1e-3", "--no-progress", "--no-report"]


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every entry under ``root``: content (files), mode and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(root))] = (path.read_bytes() if path.is_file() else None, info.st_mode,
                                            info.st_mtime_ns)
    return out


def run_cli(capsys, *args: str) -> tuple[int, list[str]]:
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


# ------------------------------------------------------------------ names and paths


def test_inside_refuses_every_way_out(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    assert inside(root, "losia", "predictions", "stage1-a.jsonl") == root / "losia" / "predictions" / "stage1-a.jsonl"
    for parts in (("..", "x"), ("a/b",), ("/etc",), ("x\x00",), ("",)):
        with pytest.raises(ConfigError, match="refusing to write"):
            inside(root, *parts)
    (tmp_path / "elsewhere").mkdir()
    (root / "losia").symlink_to(tmp_path / "elsewhere")  # a link planted in the run folder
    with pytest.raises(ConfigError, match=r"resolves to .*elsewhere.*, outside"):
        inside(root, "losia", "results.json")


def test_a_manifest_task_name_cannot_write_outside_the_run_folder(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "p", "answer": "a"}\n{"prompt": "q", "answer": "b"}\n')
    manifest = tmp_path / "evil.toml"
    manifest.write_text(f'[[tasks]]\nname = "../../../../{tmp_path.name}/escaped"\ntrain = "{data.name}"\n'
                        f'test = "{data.name}"\nmetric = "accuracy"\nmax_new_tokens = 2\n')
    before = snapshot(tmp_path)
    code, lines = run_cli(capsys, "run", "--stream", str(manifest), "--model", "tiny-llama", "--methods", "full",
                          "--out", str(tmp_path / "a" / "b" / "run"), "--no-progress", "--no-report")
    assert code == 2 and len(lines) == 1 and "contains a path separator" in lines[0], lines
    assert snapshot(tmp_path) == before  # nothing written anywhere


# ------------------------------------------------------------------ whose folder


@pytest.fixture
def foreign(tmp_path) -> Path:
    folder = tmp_path / "mine"
    for name, text in {"report.html": "<p>my report</p>", "report.md": "# mine", "base_scores.json": "{}",
                       "scores.csv": "a,b\n", "checkpoint.pt": "weights", "predictions/stage1-x.jsonl": "{}\n"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("resume", [False, True])
def test_a_foreign_folder_is_refused_and_left_byte_identical(foreign, capsys, resume):
    before = snapshot(foreign)
    code, lines = run_cli(capsys, *TINY_ARGS, "--out", str(foreign), *(["--resume"] if resume else []))
    assert code == 2 and len(lines) == 1 and str(foreign) in lines[0] and "not a losia-cl run folder" in lines[0]
    assert snapshot(foreign) == before


def test_a_folder_with_someone_elses_run_json_is_refused(foreign):
    (foreign / "run.json").write_text('{"name": "another tool"}')
    before = snapshot(foreign)
    with pytest.raises(Exception, match="not a losia-cl run file"):
        run_experiment(RunConfig(out=str(foreign), resume=True, **TINY))
    assert snapshot(foreign) == before


def test_out_naming_a_file_and_resume_of_nothing_are_one_line_errors(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep")
    code, lines = run_cli(capsys, *TINY_ARGS, "--out", str(target))
    assert code == 2 and lines == [f"losia-cl: error: --out {target}: is a file, not a folder"]
    code, lines = run_cli(capsys, *TINY_ARGS, "--out", str(tmp_path / "new"), "--resume")
    assert code == 2 and len(lines) == 1 and "there is no run to continue" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and target.read_text() == "keep"


# ------------------------------------------------------------------ validation before the first byte


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("--seed", ["nan", "inf", "-1", str(10**30), "abc"]),
        ("--epochs", ["nan", "inf", "-1", "0", "1000000000", "abc"]),
        ("--max-steps", ["nan", "-1", "0", str(10**12), "abc"]),
        ("--batch-size", ["nan", "-1", "0", str(10**9), "abc"]),
        ("--grad-accum", ["inf", "-1", "0", str(10**9), "1.5"]),
        ("--max-length", ["nan", "-1", "1", str(10**9), "abc"]),
        ("--max-train-examples", ["nan", "-1", "0", str(10**30), "abc"]),
        ("--max-test-examples", ["inf", "-1", "0", "abc"]),
        ("--eval-batch-size", ["nan", "-1", "0", str(10**9), "abc"]),
        ("--checkpoint-every", ["nan", "-1", str(10**9), "abc"]),
        ("--max-grad-norm", ["nan", "inf", "-inf", "-1", "1e300", "abc"]),
        ("--lr", ["nan", "inf", "-1", "0", "1e300", "abc", "full=nan", "full=1e-3,full=2e-3", "1e-3,2e-3"]),
        ("--device", ["foo", "cuda:x", "gpu"]),
        ("--dtype", ["float64", "int8"]),
    ],
)
def test_bad_values_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, option, values):
    out = tmp_path / "out"
    for value in values:
        code, lines = run_cli(capsys, *TINY_ARGS, "--out", str(out), option, value)
        assert code == 2, (option, value)
        assert len(lines) == 1 and lines[0].startswith("losia-cl: error:"), (option, value, lines)
        assert not out.exists() and list(tmp_path.iterdir()) == [], (option, value)


def test_the_limits_are_named(capsys, tmp_path):
    for args, needle in [
        (["--seed", str(2**32)], "seed = 4294967296 is invalid: it must be an integer from 0 to 4,294,967,295"),
        (["--epochs", "1000000000"], "epochs = 1000000000 is invalid: it must be an integer from 1 to 1,000"),
        (["--lr", "2"], "lr: full=2.0 is invalid: it must be a number > 0 and <= 1"),
        (["--lr", "full=1e-3,full=2e-3"], "gives a learning rate for 'full' twice"),
        (["--max-grad-norm", "inf"], "max_grad_norm = inf is invalid"),
    ]:
        code, lines = run_cli(capsys, *TINY_ARGS, "--out", str(tmp_path / "o"), *args)
        assert code == 2 and needle in lines[0], lines
    data = tmp_path / "big.jsonl"
    data.write_text("".join(f'{{"prompt": "p{i}", "answer": "a"}}\n' for i in range(1001)))
    manifest = tmp_path / "big.toml"
    manifest.write_text('[[tasks]]\nname = "big"\ntrain = "big.jsonl"\ntest = "big.jsonl"\nmetric = "accuracy"\n'
                        "max_new_tokens = 2\n")
    code, lines = run_cli(capsys, "run", "--stream", str(manifest), "--model", "tiny-llama", "--methods", "full",
                          "--epochs", "1000", "--batch-size", "1", "--out", str(tmp_path / "o"))
    assert code == 2 and "task 'big' would take 1,001,000 micro-batches" in lines[0] and "limit 1,000,000" in lines[0]
    assert not (tmp_path / "o").exists()


def _bad_models(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf file")
    (tmp_path / "badconfig").mkdir()
    (tmp_path / "badconfig" / "config.json").write_text("{ not json")
    return {"missing": str(tmp_path / "missing"), "a file": str(tmp_path / "weights.bin"),
            "an empty folder": str(tmp_path / "empty"), "a fake gguf": str(tmp_path / "fake.gguf"),
            "a bad config": str(tmp_path / "badconfig")}


def test_a_refused_run_leaves_no_trace_so_the_corrected_retry_just_works(tmp_path, capsys):
    out = tmp_path / "run"
    refused = [["--model", model] for model in _bad_models(tmp_path).values()]
    refused += [["--max-length", "1"], ["--max-length", "2"]]
    import torch

    if not torch.cuda.is_available():
        refused.append(["--device", "cuda"])
    for extra in refused:
        code = cli.main([*TINY_ARGS, "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert code == 2 and "losia-cl: error:" in err and "Traceback" not in err, (extra, err)
        assert not out.exists(), extra
    assert cli.main([*TINY_ARGS, "--out", str(out)]) == 0
    assert json.loads((out / "full" / "results.json").read_text())["steps"] == {"category": 2}


# ------------------------------------------------------------------ one process at a time, no leftovers, umask


def _fake_run_folder(out: Path, config: RunConfig) -> None:
    """A run folder as a run killed right after writing its run.json leaves it."""
    from losia_cl.results import RunInfo
    from losia_cl.trainer.experiment import load_run_stream

    stream = load_run_stream(config)
    info = RunInfo(stream=stream.name, tasks=stream.task_names, model=config.model, methods=list(config.methods),
                   seed=config.seed, task_metrics={t.name: t.metric for t in stream}, config=config.to_dict())
    out.mkdir(parents=True)
    (out / "run.json").write_text(json.dumps(info.to_json()))


@pytest.mark.slow
def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(out=str(out), resume=True, **TINY)
    _fake_run_folder(out, config)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from losia_cl.trainer.run_folder import RunLock; from pathlib import Path\n"
         "with RunLock(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=r"is in use by another losia-cl process"):
            run_experiment(config)
    finally:
        holder.communicate("", timeout=60)
    assert not (out / "full").exists() and not (out / "base_scores.json").exists()
    with RunLock(out):  # the holder is gone: the folder is free again
        pass


@pytest.mark.slow
def test_resume_removes_stale_temporary_files_and_results_take_the_umask(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(out=str(out), resume=True, **TINY)
    _fake_run_folder(out, config)
    stale = [out / ".run.json.k2j4h5g6.tmp", out / ".base_scores.json.0a1b2c3d4e5f6a7b.tmp",
             out / "full" / ".checkpoint.pt.x_y1z2w3.tmp", out / "full" / "predictions" / ".stage1-category.jsonl.abcdefgh.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    old = os.umask(0o022)
    try:
        run_experiment(config)
    finally:
        os.umask(old)
    assert not any(path.exists() for path in stale)
    assert not [p for p in out.rglob("*.tmp")]
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".losia-cl.lock"]
    assert len(written) >= 5  # run.json, base_scores.json, results.json, scores.csv, predictions
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o644}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_full_disk_is_one_line_naming_the_path_and_the_free_space(tmp_path, capsys, monkeypatch):
    def full(handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=r"a\.json: cannot write it: No space left on device \(.* MiB free in "):
        atomic_write(tmp_path / "a.json", full)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too

    real_fsync = os.fsync

    def fsync_full(fd):
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("losia_cl.trainer.files.os.fsync", fsync_full)
    out = tmp_path / "run"
    code, lines = run_cli(capsys, *TINY_ARGS, "--out", str(out))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"losia-cl: error: {out / 'run.json'}: cannot write it: No space left on device (")
    assert " MiB free in " in lines[0]
    assert not [p for p in out.rglob("*.tmp")]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("deferred", [False, True])
def test_a_checkpoint_on_a_full_disk_names_the_path(tmp_path, monkeypatch, deferred):
    import torch

    from losia_cl.files import DeferredSync
    from losia_cl.trainer.checkpoint import Checkpoint

    real_fdopen = os.fdopen

    def full_device(fd, mode):  # every write to the temporary file fails as on a full disk
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode)

    monkeypatch.setattr("losia_cl.trainer.files.os.fdopen", full_device)
    with pytest.raises(WriteError, match=r"checkpoint\.pt: cannot write it: No space left on device \("):
        Checkpoint(task_index=0, step=1, model={"w": torch.ones(10_000)}, optimizer={}, scheduler=None, rng={},
                   progress={}).save(tmp_path, DeferredSync() if deferred else None)
    assert list(tmp_path.iterdir()) == []
