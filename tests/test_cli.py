"""Command-line habits: --version, -q/-v anywhere, help without a command, defaults in --help, --config, progress."""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from losia_cl import bench
from losia_cl.cli import build_parser, main
from losia_cl.progress import progress_bar


def _cli(*args: str, env_extra: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "losia_cl.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"losia-cl {metadata.version('losia-cl')}"


def test_no_command_prints_help_on_stderr_and_exits_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "usage: losia-cl" in err and "run " in err and "--version" in err


def test_help_and_option_errors_need_no_torch(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("epochs = 0.5\n")
    code = ("import sys; from losia_cl.cli import build_parser, main; build_parser(); "
            f"code = main(['run', '--config', r'{config}']); print(code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stderr


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        (["run"], 0),
        (["-v", "run"], 1),
        (["run", "-v"], 1),
        (["run", "--model", "tiny-llama", "-vv"], 2),
        (["-vv", "streams"], 2),
        (["streams", "-q"], -1),
        (["-q", "report", "somewhere"], -1),
        (["run", "-qq", "--seed", "3"], -2),
    ],
)
def test_verbosity_options_anywhere(argv, verbosity):
    args, extra = build_parser().parse_known_args(argv)
    assert not extra
    assert getattr(args, "verbose", 0) - getattr(args, "quiet", 0) == verbosity


def test_quiet_silences_info_and_verbose_shows_debug():
    assert _cli("streams").returncode == 0
    code = ("import logging, sys; from losia_cl.cli import _configure_logging; _configure_logging(int(sys.argv[1])); "
            "log = logging.getLogger('losia_cl.x'); log.debug('D'); log.info('I'); log.warning('W'); "
            "logging.getLogger('transformers').info('T')")
    outputs = {}
    for level in (-1, 0, 1, 2):
        result = subprocess.run([sys.executable, "-c", code, str(level)], capture_output=True, text=True, timeout=60)
        outputs[level] = [line.split(": ")[-1] for line in result.stderr.splitlines()]
    assert outputs == {-1: ["W"], 0: ["I", "W"], 1: ["D", "I", "W"], 2: ["D", "I", "W", "T"]}


@pytest.fixture
def help_of(capsys, monkeypatch):
    """The --help text of a command, in-process (wide, so that no default is wrapped)."""
    monkeypatch.setenv("COLUMNS", "300")

    def run(*command: str) -> str:
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
        return capsys.readouterr().out

    return run


def test_every_help_shows_defaults(help_of):
    run = help_of("run")
    for fragment in ("--batch-size", "(default: 8)", "(default: demo)", "(default: losia,lora,full)",
                     "(default: smollm2-135m)", "(default: 256)", "--config"):
        assert fragment in run, fragment
    assert "(default: 768)" in help_of("bench")
    bench = " ".join(help_of("bench").split())
    assert "(default: every registered method" in bench and "(default: full,lora)" in bench
    top = help_of()
    assert "--version" in top and "-q, --quiet" in top
    for command in ("streams", "methods", "models", "report", "compare"):
        assert "-v, --verbose" in help_of(command), command


def test_every_bench_option_has_help():
    for action in bench.build_parser()._actions:
        if action.help != argparse.SUPPRESS:
            assert action.help and action.help.strip(), action.option_strings


def test_report_help_prints_a_plain_percent(help_of):
    text = help_of("report")
    assert "95% CI" in text and "%%" not in text


def test_config_file_errors_name_file_and_key(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('model = "tiny-llama"\nmax_step = 3\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(config) in lines[0] and "'max_step'" in lines[0] and "'max_steps'" in lines[0]
    config.write_text("epochs = [1]\n")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "key 'epochs': expected an integer" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_config_file_with_cli_override_and_no_progress_bar_in_a_pipe(tmp_path):
    """One tiny run: the file sets the options, the command line overrides two; stderr is a pipe."""
    config = tmp_path / "run.toml"
    config.write_text(
        'model = "tiny-llama"\nmethods = ["full"]\ntasks = "category"\nmax-train-examples = 8\n'
        'max_test_examples = 2\nbatch_size = 4\nmax_length = 64\nseed = 1\nlr = 1e-3\nreport = false\n'
        f'out = "{tmp_path / "from-file"}"\n'
    )
    result = _cli("run", "--config", str(config), "--seed", "3", "--out", str(tmp_path / "from-cli"),
                  env_extra={"TQDM_DISABLE": ""})
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "from-cli" / "run.json").read_text())
    assert not (tmp_path / "from-file").exists()
    cfg = run["config"]
    assert (cfg["seed"], cfg["model"], cfg["methods"], cfg["tasks"]) == (3, "tiny-llama", ["full"], ["category"])
    assert (cfg["max_train_examples"], cfg["lr"], cfg["report"]) == (8, {"full": 1e-3}, False)
    assert cfg["progress"] is True  # asked for, but stderr is no terminal:
    assert "\r" not in result.stderr and "step/s" not in result.stderr and "it/s" not in result.stderr
    assert "INFO" in result.stderr  # the log itself is there


def _bar_output(enabled: bool, env: dict[str, str], monkeypatch) -> bytes:
    """What a progress bar writes to a terminal (a pseudo-terminal)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    controller, terminal = pty.openpty()
    os.set_blocking(controller, False)
    try:
        with os.fdopen(terminal, "w") as stream:
            for _ in progress_bar(range(3), enabled=enabled, file=stream, desc="work", mininterval=0):
                pass
            stream.flush()
            try:
                return os.read(controller, 65536)
            except BlockingIOError:  # nothing written
                return b""
    finally:
        os.close(controller)


def test_progress_bar_on_a_terminal_unless_disabled(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert b"work" in _bar_output(True, {}, monkeypatch)
    assert _bar_output(False, {}, monkeypatch) == b""
    assert _bar_output(True, {"TQDM_DISABLE": "1"}, monkeypatch) == b""
    assert b"work" in _bar_output(True, {"TQDM_DISABLE": "0"}, monkeypatch)


def test_progress_bar_off_in_a_pipe(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    read, write = os.pipe()
    with os.fdopen(write, "w") as stream:
        bar = progress_bar(range(3), enabled=True, file=stream, desc="work", mininterval=0)
        assert bar.disable
        list(bar)
    with os.fdopen(read) as stream:
        assert stream.read() == ""


def test_readme_config_example_is_a_valid_run_file(tmp_path):
    import re

    from losia_cl.trainer.config import RunConfig
    from losia_cl.trainer.run_file import read_run_file

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"`--config run.toml`.*?```toml\n(.*?)\n```", readme, flags=re.S).group(1)
    (tmp_path / "run.toml").write_text(block)
    values = read_run_file(tmp_path / "run.toml")
    assert values["methods"] == ("losia", "full") and values["report"] is False
    config = RunConfig(**values)
    assert config.lr == {"losia": 5e-2, "full": 1e-2} and config.tasks == ("position", "check")
