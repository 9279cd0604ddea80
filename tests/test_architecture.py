"""The package's floors: imports go down only (tools/import_floors.py, docs/architecture.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("import_floors", ROOT / "tools" / "import_floors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


floors = _load_tool()


@pytest.fixture(scope="module")
def report():
    return floors.measure()


def test_no_module_imports_a_module_that_imports_it_back(report):
    assert report.module_cycles == []


def test_no_import_runs_up_a_layer(report):
    assert [f"{imp.path}:{imp.line} -> {imp.target}" for imp in report.upward] == []


def test_no_package_imports_a_package_that_imports_it_back(report):
    assert report.room_cycles == []


def test_every_room_has_a_declared_layer(report):
    assert report.undeclared == []


def test_the_tool_sees_the_project():
    graph = floors.build_graph()
    names = set(graph.modules)
    # the streams and metrics folders are mounted as sub-packages of losia_cl (pyproject.toml package-dir)
    assert {"losia_cl.streams.types", "losia_cl.metrics.continual", "losia_cl.trainer.evaluate"} <= names
    arrows = {(imp.source, imp.target) for imp in graph.imports}
    assert ("losia_cl.streams.own_data", "losia_cl.streams.types") in arrows  # a relative import
    assert ("losia_cl.cli", "losia_cl.bench") in arrows  # an import inside a function


def _write(root: Path, files: dict[str, str]) -> None:
    for folder in floors.SOURCES:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_hidden_import_back_up_is_a_cycle_and_an_upward_import(tmp_path):
    _write(tmp_path, {
        "losia_cl/__init__.py": "",
        "losia_cl/errors.py": "def f():\n    from .cli import main\n    return main\n",
        "losia_cl/cli.py": "from losia_cl.errors import f\n\ndef main():\n    return f\n",
        "losia_cl/trainer/__init__.py": "",
        "losia_cl/trainer/step.py": "from ..errors import f\n",
        "streams/__init__.py": "from . import types\n",
        "streams/types.py": "import losia_cl.errors\n",
    })
    report = floors.measure(tmp_path)
    assert report.module_cycles == [["losia_cl.cli", "losia_cl.errors"]]
    assert report.room_cycles == [["cli", "errors"]]
    assert [(imp.source, imp.target, imp.in_function) for imp in report.upward] == [
        ("losia_cl.errors", "losia_cl.cli", True)]
    # a cycle counts as one room: errors and cli share floor 0, trainer and streams stand on them
    assert report.room_floors == {"cli": 0, "errors": 0, "losia_cl": 0, "streams": 1, "trainer": 1}


def test_floors_are_the_longest_chain_below(tmp_path):
    _write(tmp_path, {
        "losia_cl/errors.py": "",
        "losia_cl/fields.py": "from losia_cl import errors\n",
        "metrics/__init__.py": "from losia_cl.fields import x\nfrom losia_cl.errors import y\n",
        "losia_cl/cli.py": "from losia_cl.metrics import z\nimport losia_cl.errors\n",
    })
    report = floors.measure(tmp_path)
    assert report.room_floors == {"errors": 0, "fields": 1, "metrics": 2, "cli": 3}
    assert report.floor_count == 4
    assert report.module_cycles == [] and report.room_cycles == [] and report.upward == []
