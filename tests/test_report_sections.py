"""Report sections are modules found in losia_cl.report.sections: adding one is adding one file."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from test_report_data import parse_page, write_run

import losia_cl.report.sections as sections_pkg
from losia_cl.report import build_report
from losia_cl.report.sections import report_sections

REPORT_DIR = Path(sections_pkg.__file__).parent.parent

EXTRA_SECTION = '''
from losia_cl.report.document import Explanation, Paragraph, Section

ORDER = 45


def section(runs, writer):
    if "full" not in runs.groups:
        return None
    ap = runs.groups["full"].results[0].metrics["average_performance"]
    return Section("Extra view", "extra", [Paragraph(f"full reached AP {ap:.4f} over {len(runs.tasks)} tasks")],
                   Explanation("Extra view:", [("extra", "AP of full", "a section added as one file")]))
'''


@pytest.fixture
def extra_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder added to the sections package's search path, as if its files lay in the package."""
    folder = tmp_path / "more_sections"
    folder.mkdir()
    monkeypatch.setattr(sections_pkg, "__path__", [*sections_pkg.__path__, str(folder)])
    yield folder
    for name in list(sys.modules):
        if name.startswith("losia_cl.report.sections.") and name.rsplit(".", 1)[1] in {
                p.stem for p in folder.glob("*.py")}:
            del sys.modules[name]


def test_sections_come_in_page_order() -> None:
    specs = report_sections()
    assert [s.name for s in specs] == ["run", "learning_rates", "lr_budget", "schedule", "comparison", "paired", "scores",
                                       "forgetting", "graded", "retention", "overlap", "stability"]
    assert [s.order for s in specs] == sorted(s.order for s in specs)


def test_adding_a_section_is_adding_one_file(tmp_path: Path, extra_dir: Path) -> None:
    (extra_dir / "extra_view.py").write_text(EXTRA_SECTION)
    assert [s.name for s in report_sections()][9:12] == ["retention", "extra_view", "overlap"]
    run = write_run(tmp_path / "run")
    files = build_report([run], out=tmp_path / "out" / "r.html")
    page = parse_page(files.html)
    import json

    ap = json.loads((run / "full" / "results.json").read_text())["metrics"]["average_performance"]
    assert f"full reached AP {ap:.4f} over 3 tasks" in page.all_text
    text = files.html.read_text()
    # placed by ORDER between the forgetting curves and the subnet overlap, and in the table of contents
    assert text.index('id="forgetting"') < text.index('id="extra"') < text.index('id="overlap"')
    assert '<a href="#extra">Extra view</a>' in text
    # its explanation joins "How to read this", after the sections that come before it
    howto = text[text.index('id="how-to-read"'):]
    assert "Extra view:" in howto and howto.index("Extra view:") < howto.index("Subnet overlap (LoSiA-family")
    md = files.markdown.read_text()
    assert "## Extra view" in md and f"full reached AP {ap:.4f}" in md


def test_a_section_that_does_not_apply_is_left_out(tmp_path: Path, extra_dir: Path) -> None:
    (extra_dir / "extra_view.py").write_text(EXTRA_SECTION)
    run = write_run(tmp_path / "run", methods=("losia", "lora"))
    text = build_report([run], out=tmp_path / "out" / "r.html").html.read_text()
    assert 'id="extra"' not in text and "Extra view:" not in text


def test_section_modules_must_be_complete_and_ordered_uniquely(extra_dir: Path) -> None:
    (extra_dir / "broken_view.py").write_text("def section(runs, writer):\n    return None\n")
    with pytest.raises(TypeError, match="broken_view must define ORDER"):
        report_sections()
    (extra_dir / "broken_view.py").unlink()
    sys.modules.pop("losia_cl.report.sections.broken_view", None)
    (extra_dir / "twin_view.py").write_text("ORDER = 30\ndef section(runs, writer):\n    return None\n")
    with pytest.raises(ValueError, match="share ORDER = 30"):
        report_sections()


def _imports(path: Path) -> set[str]:
    """Modules of losia_cl.report imported by ``path`` (relative and absolute imports, any nesting)."""
    package = "losia_cl.report" + ("" if path.parent == REPORT_DIR else "." + path.parent.name)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # ``from . import explain``
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {t for t in found if t.startswith("losia_cl.report.")}


def test_report_modules_import_each_other_without_cycles() -> None:
    modules = {}
    for path in sorted(REPORT_DIR.rglob("*.py")):
        rel = path.relative_to(REPORT_DIR).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        modules[".".join(["losia_cl.report", *parts])] = _imports(path)
    assert "losia_cl.report.sections.stability" in modules
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2 or name not in modules:
            return
        assert state.get(name) != 1, "import cycle: " + " -> ".join([*trail, name])
        state[name] = 1
        for dep in modules[name]:
            visit(dep, [*trail, name])
        state[name] = 2

    for name in modules:
        visit(name, [])
    # no private name crosses a module boundary
    for path in REPORT_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("losia_cl")):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
                assert not private, (path, private)


def test_the_documented_example_section_works(tmp_path: Path, extra_dir: Path) -> None:
    import json
    import re

    doc = (Path(__file__).parent.parent / "docs" / "report.md").read_text()
    part = doc[doc.index("## Adding a section"):]
    code = re.search(r"```python\n(# losia_cl/report/sections/(\w+)\.py\n.*?)```", part, re.S)
    assert code is not None
    (extra_dir / f"{code.group(2)}.py").write_text(code.group(1))
    run = write_run(tmp_path / "run")
    files = build_report([run], out=tmp_path / "out" / "r.html")
    table = parse_page(files.html).table("Final average performance")
    for method in ("losia", "lora", "full"):
        ap = json.loads((run / method / "results.json").read_text())["metrics"]["average_performance"]
        assert [r for r in table["rows"] if r[0][0] == method][0][1][0] == f"{ap:.3f}"
    assert "Final scores:" in files.html.read_text()
