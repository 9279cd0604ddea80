"""Every module of the package imports on its own, in a process where no other project module is loaded yet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: import name -> folder (pyproject's package-dir)
PACKAGES = {"losia_cl": ROOT / "losia_cl", "losia_cl.streams": ROOT / "streams", "losia_cl.metrics": ROOT / "metrics"}


def _modules() -> list[str]:
    found = []
    for prefix, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            found.append(".".join([prefix, *parts]))
    return found


_CHILD = """
import importlib, os, sys
for dependency in ("torch", "transformers", "peft", "numpy", "matplotlib", "avalanche"):
    try:
        importlib.import_module(dependency)  # third-party, imported once; never a project module
    except ImportError:
        pass
assert not any(m == "losia_cl" or m.startswith("losia_cl.") for m in sys.modules)
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:  # a child process with no project module imported yet
        try:
            importlib.import_module(name)
        except BaseException as error:
            sys.stderr.write(f"{name}: {type(error).__name__}: {error}\\n")
            os._exit(1)
        os._exit(0)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        failed.append(name)
print(" ".join(failed))
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own():
    names = [n for n in _modules() if not n.endswith("__main__")]
    result = subprocess.run([sys.executable, "-c", _CHILD, *names], capture_output=True, text=True, timeout=600,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stderr
