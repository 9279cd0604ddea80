"""docs/distributed.md: its commands parse, and `--nproc N` is the torchrun command it shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from losia_cl.cli import build_parser
from losia_cl.distributed.launch import torchrun_command, without_nproc

DOC = (Path(__file__).resolve().parents[1] / "docs" / "distributed.md").read_text()


def _commands(program: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)\n```", DOC, flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.startswith(program + " ")]


def test_the_documented_commands_parse():
    from torch.distributed.run import get_args_parser

    launched, torchruns = _commands("losia-cl"), _commands("torchrun")
    assert len(launched) == 1 and len(torchruns) == 2
    for command in launched:
        args = build_parser().parse_args(command[1:])
        assert args.nproc == 2
    for command in torchruns:
        torchrun = get_args_parser().parse_args(command[1:])
        assert torchrun.module and torchrun.training_script == "losia_cl"
        build_parser().parse_args(torchrun.training_script_args)


def test_nproc_is_the_documented_torchrun_command():
    (launched,), (single_node, _) = _commands("losia-cl"), _commands("torchrun")
    command = torchrun_command(2, without_nproc(launched[1:]))
    assert command[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert single_node[1:4] == ["--standalone", "--nproc-per-node", "2"]
    assert command[4:] == ["--nproc-per-node=2", *single_node[4:]]


def test_without_nproc():
    assert without_nproc(["run", "--nproc", "2", "--seed", "1", "--nproc=3"]) == ["run", "--seed", "1"]
