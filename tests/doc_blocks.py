"""The code blocks of README.md and docs/*.md, and a runner that executes the Python ones as written.

A block is a fenced code block (```lang ... ```).  An HTML comment on the line right before the
opening fence, ``<!-- needs: data -->`` (or ``network``, ``gpu``, or several: ``<!-- needs: data, network -->``),
says the block needs something a test machine does not have (a data set, a run folder made by a long
run, the Hugging Face hub); those blocks are not run.  Every other Python block must run as written.

:func:`run_document` runs all the Python blocks of one document in one Python process (the imports of
torch and transformers, which take most of a block's time, are paid once), each block in a fresh
namespace and a fresh empty working directory, with its own stdout, stderr and exception; results
are kept for the session, so the tests that check a block's output and the test that runs every block
share one run.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
#: What a ``<!-- needs: ... -->`` marker may name.
NEEDS = ("data", "network", "gpu")

_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*needs:\s*(?P<what>[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and what it needs."""

    document: Path
    line: int  #: line of the opening fence (1-based)
    lang: str
    text: str
    needs: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Outcome:
    """What running a block gave: ``error`` is the traceback's last line, None when it ran."""

    stdout: str
    stderr: str
    error: str | None
    cwd: Path


def blocks(document: Path) -> list[Block]:
    """Every fenced block of ``document`` in order."""
    text = document.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        needs = tuple(n.strip() for n in marker.group("what").split(",")) if marker else ()
        found.append(Block(document, line, match.group("lang"), match.group("body"), needs))
    return found


def python_blocks() -> list[Block]:
    """The Python blocks of README.md and docs/*.md."""
    return [b for document in DOCUMENTS for b in blocks(document) if b.lang == "python"]


def find_block(document: str, after: str, lang: str = "python") -> Block:
    """The first ``lang`` block of ``document`` (relative to the repository) after the text ``after``."""
    path = ROOT / document
    text = path.read_text(encoding="utf-8")
    start = text.index(after)
    line = text.count("\n", 0, start) + 1
    return next(b for b in blocks(path) if b.lang == lang and b.line > line)


_DRIVER = r"""
import contextlib, io, json, os, sys, traceback
jobs = json.load(sys.stdin)
results = []
for job in jobs:
    os.chdir(job["cwd"])
    out, err = io.StringIO(), io.StringIO()
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            exec(compile(job["code"], job["name"], "exec"), {"__name__": "__main__"})
        except BaseException:
            error = traceback.format_exc()
    results.append({"stdout": out.getvalue(), "stderr": err.getvalue(), "error": error})
print("\n@@RESULTS@@" + json.dumps(results))
"""


@functools.cache
def run_document(document: Path, timeout: int = 900) -> dict[int, Outcome]:
    """Run every Python block of ``document`` that needs nothing; ``{line of the block: Outcome}``."""
    runnable = [b for b in blocks(document) if b.lang == "python" and not b.needs]
    if not runnable:
        return {}
    root = Path(tempfile.mkdtemp(prefix="losia-cl-doc-"))
    jobs = []
    for block in runnable:
        cwd = root / f"line{block.line}"
        cwd.mkdir()
        jobs.append({"name": block.name, "code": block.text, "cwd": str(cwd)})
    result = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(jobs), capture_output=True,
                            text=True, timeout=timeout, cwd=root)
    if result.returncode != 0 or "@@RESULTS@@" not in result.stdout:
        raise RuntimeError(f"running the blocks of {document} failed:\n{result.stderr[-3000:]}")
    outcomes = json.loads(result.stdout.rsplit("@@RESULTS@@", 1)[1])
    return {
        block.line: Outcome(o["stdout"], o["stderr"], o["error"], Path(job["cwd"]))
        for block, job, o in zip(runnable, jobs, outcomes)
    }


def run_block(block: Block) -> Outcome:
    """The outcome of ``block`` (all blocks of its document run once per session)."""
    if block.needs:
        raise ValueError(f"{block.name} needs {', '.join(block.needs)}; it is not run")
    return run_document(block.document)[block.line]
