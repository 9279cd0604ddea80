"""Hostile inputs: each one ends in exactly one line (``losia-cl: error: ...``), exit code 2, and nothing written.

One row per input.  The run folders the rows damage are copies of two made once: a finished run and a run
interrupted inside its first task (its checkpoint at step 1 of 2).  A row's lines are what the CLI prints on
stderr plus the warnings it logs there (a progress line at INFO may come before a refusal that needs the model);
"nothing written" compares every entry under the row's folder (kind, bytes, link target, mode) before and after.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from losia_cl import cli
from losia_cl.errors import ConfigError
from losia_cl.files import DeferredSync, atomic_write_text
from losia_cl.trainer.checkpoint import Checkpoint
from losia_cl.trainer.files import inside
from losia_cl.trainer.plan import BatchPlan
from losia_cl.trainer.sequential import SequentialTrainer

RUN = ["run", "--model", "tiny-llama", "--methods", "full", "--max-train-examples", "4", "--max-test-examples", "2",
       "--batch-size", "2", "--eval-batch-size", "4", "--max-length", "48", "--no-progress", "--no-retention"]
FINISHED = [*RUN, "--tasks", "category", "--lr", "full=1e-3"]  # plus --out; the finished template's options
INTERRUPTED = [*RUN, "--tasks", "category,position", "--lr", "full=1e-3", "--checkpoint-every", "1"]
LOSIA = ["run", "--model", "tiny-llama", "--methods", "losia", "--tasks", "category", "--max-train-examples", "8",
         "--max-test-examples", "2", "--batch-size", "2", "--eval-batch-size", "4", "--max-length", "48",
         "--checkpoint-every", "2", "--no-progress", "--no-retention"]
NOT_UTF8 = b'{"format": "\xff\xfe"}'
DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = '{"format": 1' + "0" * 5000 + "}"


# ------------------------------------------------------------------ helpers


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: its kind and content (bytes of a regular file, target of a link) and mode."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                content: object = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                content = ("file", path.read_bytes())
            else:
                content = ("other",)
            out[str(path.relative_to(root))] = (content, stat.S_IMODE(info.st_mode), stat.S_IFMT(info.st_mode))
    return out


def run_cli(capsys, caplog, argv: list[str]) -> tuple[int, list[str]]:
    """The exit code, and the lines the CLI writes on stderr followed by the warnings it logs there."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    logged = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    return code, logged + lines


def _interrupt_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    original = SequentialTrainer._checkpoint

    def checkpoint_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._sync.wait()
        raise KeyboardInterrupt

    monkeypatch.setattr(SequentialTrainer, "_checkpoint", checkpoint_then_stop)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """``finished``: a finished run of one task; ``interrupted``: two tasks, stopped at step 1 of 2 of the first;
    ``losia``: LoSiA on one task, stopped at step 2 of 4."""
    root = tmp_path_factory.mktemp("templates")
    assert cli.main([*FINISHED, "--no-report", "--out", str(root / "finished")]) == 0
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_after_first_checkpoint(patch)
        assert cli.main([*INTERRUPTED, "--no-report", "--out", str(root / "interrupted")]) == 130
        assert cli.main([*LOSIA, "--no-report", "--out", str(root / "losia")]) == 130
    for folder, position in (("interrupted/full", (0, 1)), ("losia/losia", (0, 2))):
        saved = torch.load(root / folder / "checkpoint.pt", weights_only=True)
        assert (saved["task_index"], saved["step"]) == position
    return {name: root / name for name in ("finished", "interrupted", "losia")}


# ------------------------------------------------------------------ how the rows plant their inputs


def replace_with(relative: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Remove ``run/relative`` and put ``make(path)`` in its place."""
    def setup(root: Path) -> None:
        path = root / "run" / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        make(path)
    return setup


def _beside_run(path: Path) -> Path:
    """The row's folder: the parent of the ``run`` folder holding ``path``."""
    return next(parent.parent for parent in path.parents if parent.name == "run")


def folder_link(path: Path) -> None:
    """A link to the folder ``elsewhere`` beside the run folder."""
    (_beside_run(path) / "elsewhere").mkdir(exist_ok=True)
    path.symlink_to(_beside_run(path) / "elsewhere", target_is_directory=True)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def craft(change: Callable[[dict], object], method: str = "full") -> Callable[[Path], None]:
    """Rewrite the interrupted run's checkpoint after ``change(data)`` (data: the loaded plain data)."""
    def setup(root: Path) -> None:
        path = root / "run" / method / "checkpoint.pt"
        data = torch.load(path, weights_only=True)
        replaced = change(data)
        torch.save(data if replaced is None else replaced, path)
    return setup


def progress(**values: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["progress"] = json.dumps({**json.loads(data["progress"]), **values})
    return change


def entry(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data.__setitem__(key, value)


def first_model_tensor(data: dict) -> None:
    name = next(iter(data["model"]))
    data["model"][name] = torch.zeros(3)


def optimizer_moment(data: dict) -> None:
    for state in data["optimizer"]["state"].values():
        state["exp_avg"] = torch.zeros(3)


def subnet_state(key: str, value: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], None]:
    """Replace ``key`` of the first LoSiA target's state by ``value(old)``."""
    def change(data: dict) -> None:
        state = next(s for s in data["optimizer"]["state"].values() if "rows" in s)
        state[key] = value(state[key])
    return change


def write(relative: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return setup


def tune_file(chosen: dict[str, float]) -> str:
    return json.dumps({"format": "losia_cl.tune/1", "stream": "demo", "model": "tiny-llama", "chosen": chosen})


def tuned_then_edited(root: Path) -> None:
    """The finished run as if it took its rate from tune.json, which was edited afterwards."""
    tune = root / "tune.json"
    run_file = root / "run" / "run.json"
    info = json.loads(run_file.read_text())
    info["config"].update(lr={}, lr_from=str(tune))
    info["learning_rates"] = {"full": {"lr": 1e-3, "source": "tune.json", "file": str(tune)}}
    run_file.write_text(json.dumps(info))
    tune.write_text(tune_file({"full": 2e-3}))


def manifest(template: str, name: str = "t") -> Callable[[Path], None]:
    """``ROOT/m.toml``: one task ``name`` whose prompt is ``template``, on two examples."""
    def setup(root: Path) -> None:
        (root / "d.jsonl").write_text('{"prompt": "p", "answer": "a"}\n{"prompt": "q", "answer": "b"}\n')
        (root / "m.toml").write_text(f'[[tasks]]\nname = "{name}"\ntrain = "d.jsonl"\ntest = "d.jsonl"\n'
                                     f'metric = "accuracy"\nprompt_template = "{template}"\nmax_new_tokens = 2\n')
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for each in setups:
            each(root)
    return setup


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd, write, sync=True):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("losia_cl.files._fill", full)


# ------------------------------------------------------------------ the rows


@dataclass
class Case:
    """One hostile input: the run folder copied to ``ROOT/run`` (``template``), what ``setup(ROOT)`` plants, the
    command line ``argv(ROOT)`` and a piece of the one line it must end in."""

    id: str
    argv: Callable[[Path], list[str]]
    message: str
    template: str | None = None
    setup: Callable[[Path], None] = lambda root: None
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    marks: list = field(default_factory=list)


def resume_finished(*extra: str) -> Callable[[Path], list[str]]:
    return lambda root: [*FINISHED, "--out", str(root / "run"), "--resume", *extra]


def resume_interrupted(root: Path) -> list[str]:
    return [*INTERRUPTED, "--no-report", "--out", str(root / "run"), "--resume"]


def resume_losia(root: Path) -> list[str]:
    return [*LOSIA, "--no-report", "--out", str(root / "run"), "--resume"]


def rooted(args: tuple[str, ...], root: Path) -> list[str]:
    return [arg.replace("ROOT", str(root)) for arg in args]


def new_run(*extra: str) -> Callable[[Path], list[str]]:
    return lambda root: [*FINISHED, "--no-report", "--out", str(root / "run"), *rooted(extra, root)]


def new_run_with(*extra: str) -> Callable[[Path], list[str]]:
    """A new run whose options ``extra`` replace the learning rate (and may name the methods)."""
    return lambda root: [*RUN, "--tasks", "category", "--no-report", "--out", str(root / "run"), *rooted(extra, root)]


def bench(*extra: str) -> Callable[[Path], list[str]]:
    return lambda root: ["bench", "--model", "tiny-llama", "--methods", "full", "--rounds", "1", "--warmup", "0",
                         "--batch-size", "1", "--seq-len", "8", "--no-memory", *extra]


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

CASES = [
    # --- symbolic links, locks, FIFOs in the run folder
    Case("report-folder-links-outside", resume_finished(), "report is a symbolic link to", "finished",
         replace_with("report", folder_link)),
    Case("predictions-folder-links-outside", resume_interrupted, "predictions is a symbolic link to", "interrupted",
         both(lambda root: (root / "run" / "full" / "predictions").mkdir(),
              replace_with("full/predictions", folder_link))),
    Case("lock-is-a-folder", resume_finished(), "the lock file of the run folder is a folder", "finished",
         replace_with(".losia-cl.lock", Path.mkdir)),
    Case("lock-is-a-symlink-loop", resume_finished(), "the lock file of the run folder is a symbolic link",
         "finished", replace_with(".losia-cl.lock", lambda p: p.symlink_to(p.name))),
    Case("lock-links-to-a-foreign-file", resume_finished(), ".losia-cl.lock is a symbolic link to", "finished",
         both(write("mine.txt", "keep"),
              replace_with(".losia-cl.lock", lambda p: p.symlink_to(_beside_run(p) / "mine.txt")))),
    Case("lock-is-a-fifo", resume_finished(), "the lock file of the run folder is not a regular file", "finished",
         replace_with(".losia-cl.lock", fifo)),
    Case("checkpoint-is-a-fifo", resume_interrupted, "not a regular file (a FIFO)", "interrupted",
         replace_with("full/checkpoint.pt", fifo)),
    Case("run-json-is-a-fifo", resume_finished(), "run.json: not a regular file (a FIFO)", "finished",
         replace_with("run.json", fifo)),
    # --- crafted checkpoints (plain data that torch.load(weights_only=True) reads)
    Case("checkpoint-extra-progress-key", resume_interrupted, "progress: unknown key(s) 'bogus'", "interrupted",
         craft(progress(bogus=1))),
    Case("checkpoint-missing-progress-key", resume_interrupted, "required key(s) 'scores' missing", "interrupted",
         craft(lambda d: d.__setitem__("progress", json.dumps({"losses": {}})))),
    Case("checkpoint-scores-not-a-list", resume_interrupted, "progress.scores: expected a list, got 'abc'",
         "interrupted", craft(progress(scores="abc"))),
    Case("checkpoint-score-row-too-short", resume_interrupted, "progress.scores must hold 1 row(s) of 2 score(s)",
         "interrupted", craft(progress(scores=[[0.0]]))),
    Case("checkpoint-too-many-score-rows", resume_interrupted, "progress.loglik_scores must hold 1 row(s)",
         "interrupted", craft(progress(loglik_scores=[[0.0, 0.0]] * 5))),
    Case("checkpoint-score-not-a-number", resume_interrupted, "progress.scores[0][1]: expected a finite number",
         "interrupted", craft(progress(scores=[[0.0, "x"]]))),
    Case("checkpoint-losses-wrong-type", resume_interrupted, "progress.losses: expected an object, got [1]",
         "interrupted", craft(progress(losses=[1]))),
    Case("checkpoint-steps-wrong-type", resume_interrupted, "progress.steps.category: expected an integer",
         "interrupted", craft(progress(steps={"category": "many"}))),
    Case("checkpoint-method-record-wrong-type", resume_interrupted, "progress.method_record: expected an object",
         "interrupted", craft(progress(method_record=[1]))),
    Case("checkpoint-retention-wrong-type", resume_interrupted, "progress.retention: expected a list",
         "interrupted", craft(progress(retention={"a": 1}))),
    Case("checkpoint-overlap-wrong-type", resume_interrupted, "progress.overlap: expected an object or null",
         "interrupted", craft(progress(overlap=[1]))),
    Case("checkpoint-huge-number", resume_interrupted, "progress.train_seconds: expected a finite number",
         "interrupted", craft(progress(train_seconds=10**400))),
    Case("checkpoint-progress-not-an-object", resume_interrupted, "progress must be the JSON text of an object",
         "interrupted", craft(entry("progress", "[1, 2]"))),
    Case("checkpoint-progress-deep-json", resume_interrupted, "refused to resume from this checkpoint: unreadable",
         "interrupted", craft(entry("progress", DEEP))),
    Case("checkpoint-task-beyond-the-run", resume_interrupted, "it stands at task 8, but this run has 2 task(s)",
         "interrupted", craft(entry("task_index", 7))),
    Case("checkpoint-negative-task", resume_interrupted, "task_index must be an integer >= 0, got -1", "interrupted",
         craft(entry("task_index", -1))),
    Case("checkpoint-step-beyond-the-task", resume_interrupted, "it stands at step 1000000000000 of task 1, which has "
         "2 step(s)", "interrupted", craft(entry("step", 10**12))),
    Case("checkpoint-step-not-an-integer", resume_interrupted, "step must be an integer >= 0, got '1'",
         "interrupted", craft(entry("step", "1"))),
    Case("checkpoint-unknown-entry", resume_interrupted, "unknown entries ['extra']", "interrupted",
         craft(entry("extra", 1))),
    Case("checkpoint-model-not-tensors", resume_interrupted, "model must map parameter names to tensors",
         "interrupted", craft(entry("model", [1]))),
    Case("checkpoint-model-tensor-wrong-shape", resume_interrupted, "its states do not fit this run's model",
         "interrupted", craft(first_model_tensor)),
    Case("checkpoint-optimizer-moment-wrong-shape", resume_interrupted, "optimizer state 'exp_avg' has shape (3,)",
         "interrupted", craft(optimizer_moment)),
    Case("checkpoint-losia-moment-wrong-shape", resume_losia, "state 'exp_avg' of 'model.layers.0.self_attn.q_proj' "
         "has shape (3,), expected (8, 8)", "losia", craft(subnet_state("exp_avg", lambda _: torch.zeros(3)), "losia")),
    Case("checkpoint-losia-subnet-index-out-of-range", resume_losia, "state 'rows' of 'model.layers.0.self_attn.q_proj' "
         "holds indices outside 0 to 63", "losia",
         craft(subnet_state("rows", lambda rows: torch.full_like(rows, 10**6)), "losia")),
    Case("checkpoint-optimizer-not-a-state-dict", resume_interrupted, "optimizer must be an optimizer state dict",
         "interrupted", craft(entry("optimizer", {"state": []}))),
    Case("checkpoint-scheduler-wrong-type", resume_interrupted, "scheduler must be a scheduler state dict or None",
         "interrupted", craft(entry("scheduler", [1]))),
    Case("checkpoint-rng-wrong-type", resume_interrupted, "rng must hold the random number generators' states",
         "interrupted",
         craft(lambda d: d["rng"].__setitem__("torch", 1))),
    Case("checkpoint-numpy-rng-wrong-size", resume_interrupted, "rng must hold the random number generators' states",
         "interrupted",
         craft(lambda d: d["rng"]["numpy"].__setitem__("key", torch.zeros(10, dtype=torch.int64)))),
    Case("checkpoint-not-a-dict", resume_interrupted, "its format is 'list'", "interrupted",
         craft(lambda d: [1, 2])),
    Case("checkpoint-garbage-bytes", resume_interrupted, "refused to resume from this checkpoint: unreadable",
         "interrupted", write("run/full/checkpoint.pt", b"\x80\x04garbage")),
    # --- --config, --method-option, --lr-from and tune.json
    Case("config-tasks-an-integer", new_run("--config", "ROOT/c.toml"), "key 'tasks': expected a list of strings",
         setup=write("c.toml", "tasks = 3\n")),
    Case("config-lr-a-list", new_run("--config", "ROOT/c.toml"), "key 'lr': expected a table",
         setup=write("c.toml", "lr = [1]\n")),
    Case("config-method-options-not-tables", new_run("--config", "ROOT/c.toml"),
         "method_options = {'full': 3} is invalid", setup=write("c.toml", "method_options = { full = 3 }\n")),
    Case("config-lr-above-1-in-method-options", new_run_with("--config", "ROOT/c.toml"),
         "method_options: full.lr=50 is invalid", setup=write("c.toml", "method_options = { full = { lr = 50 } }\n")),
    Case("config-is-a-fifo", new_run("--config", "ROOT/c.toml"), "c.toml: not a file",
         setup=lambda r: fifo(r / "c.toml")),
    Case("method-option-lr-above-1", new_run_with("--method-option", "full.lr=1e30"),
         "method_options: full.lr=1e+30 is invalid"),
    Case("method-option-deep-json", new_run_with("--method-option", "full.lr=" + DEEP),
         "method_options: full.lr='[[[["),
    Case("method-option-long-integer", new_run_with("--method-option", "full.lr=1" + "0" * 5000),
         "method_options: full.lr='1000"),
    Case("lr-from-rate-above-1", new_run_with("--lr-from", "ROOT/tune.json"), "chosen full=50 is invalid",
         setup=write("tune.json", tune_file({"full": 50}))),
    Case("lr-from-deep-json", new_run("--lr-from", "ROOT/tune.json"), "nested too deeply",
         setup=write("tune.json", DEEP)),
    Case("lr-from-long-integer", new_run("--lr-from", "ROOT/tune.json"), "5001 digits",
         setup=write("tune.json", LONG_INT)),
    Case("lr-from-not-utf8", new_run("--lr-from", "ROOT/tune.json"), "not UTF-8 text",
         setup=write("tune.json", NOT_UTF8)),
    Case("lr-from-a-fifo", new_run("--lr-from", "ROOT/tune.json"), "not a regular file (a FIFO)",
         setup=lambda r: fifo(r / "tune.json")),
    Case("tune-json-edited-before-resume",
         lambda root: [*RUN, "--tasks", "category", "--lr-from", str(root / "tune.json"), "--out", str(root / "run"),
                       "--resume", "--no-report"],
         "records the learning rate 0.001 for full, this run would use 0.002", "finished", tuned_then_edited),
    # --- methods, task names, manifests, models
    Case("methods-differing-in-case", new_run_with("--methods", "full,FULL"), "'FULL' collides with 'full'"),
    Case("task-name-too-long", new_run_with("--stream", "ROOT/m.toml", "--lr", "full=1e-3"),
         "is longer than 120 bytes", setup=manifest("{prompt}", name="é" * 61)),
    Case("manifest-template-huge-width", new_run_with("--stream", "ROOT/m.toml", "--tasks", "t"),
         "m.toml: key tasks[0].prompt_template: {prompt:>999999999}", setup=manifest("{prompt:>999999999}")),
    Case("manifest-template-huge-precision", new_run_with("--stream", "ROOT/m.toml", "--tasks", "t"),
         "width and precision may be at most 1000", setup=manifest("{prompt:." + "9" * 5000 + "}")),
    Case("manifest-template-nested-field", new_run_with("--stream", "ROOT/m.toml", "--tasks", "t"),
         "a format spec may not hold fields", setup=manifest("{prompt:{answer}}")),
    Case("manifest-is-a-fifo", new_run_with("--stream", "ROOT/m.toml"), "m.toml: not a file",
         setup=lambda r: fifo(r / "m.toml")),
    Case("model-an-empty-folder", new_run("--model", "ROOT/empty"), "has no config.json and no .gguf file",
         setup=lambda r: (r / "empty").mkdir()),
    Case("model-a-fake-gguf", new_run("--model", "ROOT/fake.gguf"), "does not start with the GGUF magic bytes",
         setup=write("fake.gguf", "not a gguf file")),
    Case("model-a-plain-file", new_run("--model", "ROOT/weights.bin"), "is a file but not a .gguf file",
         setup=write("weights.bin", b"\0" * 64)),
    Case("model-a-bad-config", new_run("--model", "ROOT/bad"), "could not load model",
         setup=write("bad/config.json", "{ not json")),
    # --- --seeds
    Case("seeds-into-a-foreign-folder", new_run("--seeds", "0,1"), "is not a losia-cl seeds folder",
         setup=write("run/notes.txt", "mine")),
    Case("seeds-over-a-foreign-seeds-json", new_run("--seeds", "0,1"), "seeds.json: not a seeds file",
         setup=write("run/seeds.json", '{"seeds": "mine"}')),
    Case("seeds-one-out-of-range", new_run("--seeds", "0,4294967296"), "seed = 4294967296 is invalid"),
    Case("seeds-of-an-unknown-stream", new_run("--seeds", "0,1", "--stream", "bogus"), "unknown stream 'bogus'"),
    Case("seeds-resumed-with-other-seeds", new_run("--seeds", "0,2", "--resume"), "lists the seeds [0, 1], this run "
         "asks for [0, 2]", setup=write("run/seeds.json", json.dumps({"format": "losia_cl.seeds/1", "seeds": [0, 1],
                                                                       "runs": ["seed0", "seed1"]}))),
    # --- bench
    Case("bench-threads-0", bench("--threads", "0"), "--threads: 0 is invalid: it must be an integer >= 1"),
    Case("bench-nproc-0", bench("--nproc", "0"), "--nproc: 0 is invalid: it must be an integer >= 1"),
    Case("bench-unknown-device", bench("--device", "bogus"), "device 'bogus' is not a valid torch device"),
    Case("bench-cuda-without-a-gpu", bench("--device", "cuda"), "CUDA is not available", marks=[NO_GPU]),
    # --- report
    Case("report-run-json-deep", lambda root: ["report", str(root / "run")], "nested too deeply",
         setup=write("run/run.json", DEEP)),
    Case("report-run-json-long-integer", lambda root: ["report", str(root / "run")], "5001 digits",
         setup=write("run/run.json", LONG_INT)),
    Case("report-run-json-not-utf8", lambda root: ["report", str(root / "run")], "not UTF-8 text",
         setup=write("run/run.json", NOT_UTF8)),
    Case("report-seeds-json-deep", lambda root: ["report", str(root / "run")], "nested too deeply",
         setup=write("run/seeds.json", DEEP)),
    Case("report-seeds-json-long-integer", lambda root: ["report", str(root / "run")], "5001 digits",
         setup=write("run/seeds.json", LONG_INT)),
    Case("report-seeds-json-not-utf8", lambda root: ["report", str(root / "run")], "not UTF-8 text",
         setup=write("run/seeds.json", NOT_UTF8)),
    Case("report-seeds-json-a-fifo", lambda root: ["report", str(root / "run")], "not a regular file (a FIFO)",
         setup=lambda r: (r / "run").mkdir() or fifo(r / "run" / "seeds.json")),
    Case("report-folder-links-outside-the-run", lambda root: ["report", str(root / "run")],
         "a symbolic link leads it to", "finished", replace_with("report", folder_link)),
    Case("disk-full-during-the-final-report", resume_finished(), "No space left on device", "finished",
         patch=disk_full),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_a_hostile_input_ends_in_one_line_and_writes_nothing(case, templates, tmp_path, capsys, caplog, monkeypatch):
    if case.template:
        shutil.copytree(templates[case.template], tmp_path / "run", symlinks=True)
    case.setup(tmp_path)
    if case.patch:
        case.patch(monkeypatch)
    before = snapshot(tmp_path)
    code, lines = run_cli(capsys, caplog, case.argv(tmp_path))
    assert code == 2, (code, lines)
    assert len(lines) == 1 and lines[0].startswith("losia-cl: error: "), lines
    assert case.message in lines[0], lines[0]
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ what the rules keep working


def test_a_task_name_of_120_bytes_runs_to_the_end(tmp_path, capsys, caplog):
    name = "é" * 60  # 120 bytes of UTF-8
    manifest("{prompt}", name=name)(tmp_path)
    code, lines = run_cli(capsys, caplog, [*RUN, "--stream", str(tmp_path / "m.toml"), "--lr", "full=1e-3",
                                           "--no-report", "--out", str(tmp_path / "run")])
    assert code == 0, lines
    assert (tmp_path / "run" / "full" / "predictions" / f"stage1-{name}.jsonl").is_file()


def test_a_resumption_of_a_finished_run_changes_nothing(templates, tmp_path, capsys, caplog):
    shutil.copytree(templates["finished"], tmp_path / "run", symlinks=True)
    before = snapshot(tmp_path)
    code, lines = run_cli(capsys, caplog, [*FINISHED, "--no-report", "--out", str(tmp_path / "run"), "--resume"])
    assert code == 0, lines
    assert snapshot(tmp_path) == before


def test_writes_check_the_folder_when_they_open_the_file(tmp_path):
    root, outside = tmp_path / "run", tmp_path / "outside"
    (root / "full").mkdir(parents=True)
    outside.mkdir()
    target = inside(root, "full", "results.json")  # checked by name while the folder was still a folder
    (root / "full").rmdir()
    (root / "full").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"a symbolic link leads it to .*outside"):
        atomic_write_text(target, "{}", root=root)
    with pytest.raises(ConfigError, match="a symbolic link leads it to"):
        DeferredSync().write(target, lambda handle: handle.write(b"{}"), root=root)
    assert list(outside.iterdir()) == []


def test_the_check_before_a_resumption_maps_the_checkpoint_it_reads(templates):
    """The check maps the tensors instead of reading them, and sees the same checkpoint the trainer loads."""
    mapped = Checkpoint.load(templates["interrupted"] / "full", mmap=True)
    read = Checkpoint.load(templates["interrupted"] / "full")
    assert mapped is not None and read is not None and (mapped.task_index, mapped.step) == (0, 1)
    assert mapped.model.keys() == read.model.keys()
    assert all(torch.equal(mapped.model[k], read.model[k]) for k in read.model)
    assert mapped.progress == read.progress


@pytest.mark.parametrize("plan", [BatchPlan(epochs=e, batch_size=b, grad_accum=g, max_steps=m)
                                  for e in (1, 3) for b in (1, 4) for g in (1, 3) for m in (None, 2)])
def test_the_step_count_of_a_plan_is_the_length_of_its_steps(plan):
    for examples in (0, 1, 5, 17):
        assert plan.num_steps(examples) == len(plan.steps(examples, task_index=1))
