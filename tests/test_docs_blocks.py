"""Every Python block of README.md and docs/*.md runs as written; the others are at least well-formed.

A block that needs what a test machine lacks carries ``<!-- needs: data -->`` (``network``, ``gpu``) on the
line before it (see ``tests/doc_blocks.py``); it is not run, but it must compile and its imports must
resolve.  TOML blocks must parse.  Tests that check a block's output (test_readme.py, test_avalanche_docs.py,
test_streams_own_data.py) share the same run of each document.
"""

from __future__ import annotations

import ast
import re
import tomllib

import pytest
from doc_blocks import DOCUMENTS, NEEDS, ROOT, blocks, python_blocks, run_block

PYTHON = python_blocks()


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in PYTHON if not b.needs], ids=lambda b: b.name)
def test_every_python_block_runs_as_written(block):
    outcome = run_block(block)
    assert outcome.error is None, f"{block.name} does not run as written:\n{outcome.error}"


@pytest.mark.parametrize("block", [b for b in PYTHON if b.needs], ids=lambda b: b.name)
def test_blocks_that_need_data_compile_and_their_imports_resolve(block):
    tree = ast.parse(block.text, filename=block.name)
    imports = ast.Module(body=[node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))],
                         type_ignores=[])
    assert imports.body, f"{block.name}: a block that is not run should still show its imports"
    exec(compile(imports, block.name, "exec"), {})  # noqa: S102 - our own documentation


def test_needs_markers_name_known_needs_and_sit_right_before_a_block():
    for document in DOCUMENTS:
        lines = document.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            marker = re.search(r"<!--\s*needs:(.*?)-->", line)
            if marker is None:
                continue
            where = f"{document.relative_to(ROOT)}:{number}"
            assert number < len(lines) and lines[number].startswith("```"), f"{where}: no code block right after"
            assert all(n.strip() in NEEDS for n in marker.group(1).split(",")), f"{where}: needs one of {NEEDS}"
    marked = [b for b in PYTHON if b.needs]
    assert marked and len(marked) < len(PYTHON) // 2  # the markers are the exception


def test_every_toml_block_parses():
    for document in DOCUMENTS:
        for block in blocks(document):
            if block.lang == "toml":
                tomllib.loads(block.text)  # raises with the line and column of a mistake


def test_the_block_finder_sees_every_fence():
    """Every ``` line of every document is the opening or the closing fence of a block the tests see."""
    for document in DOCUMENTS:
        fences = sum(1 for line in document.read_text(encoding="utf-8").splitlines() if line.startswith("```"))
        assert fences == 2 * len(blocks(document)), document
