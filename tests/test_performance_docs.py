"""docs/performance.md: the bench commands its figures come from parse and name registered methods."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "performance.md").read_text()


def _bench_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)\n```", DOC, flags=re.S)
    return [shlex.split(line)[2:] for block in blocks for line in block.splitlines()
            if line.startswith("losia-cl bench ")]


def test_the_documented_bench_commands_parse_and_name_registered_methods():
    from losia_cl.bench import PLAIN_LORA, build_parser
    from losia_cl.methods import method_names

    commands = _bench_commands()
    assert len(commands) >= 3
    known = {*method_names(), PLAIN_LORA}
    for command in commands:
        args = build_parser().parse_args(command)
        assert args.methods and set(args.methods.split(",")) <= known, command
    models = {build_parser().parse_args(c).model for c in commands}
    assert models == {"", "smollm2-135m"}  # the synthetic Llama and SmolLM2


def test_the_readme_speed_section_links_the_figures():
    readme = (ROOT / "README.md").read_text()
    speed = readme.split("## Speed", 1)[1].split("\n## ", 1)[0]
    assert "(docs/performance.md)" in speed
