"""Names from the run folder (tasks, methods, model, stream, command) are text in both report.html and report.md."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_report_data import parse_page, write_run

from losia_cl.report import build_report, compare_runs
from losia_cl.report.markdown import md_text

TASK_SCRIPT = "<script>alert(1)</script>"
TASK_LINK = "[click](javascript:alert(1))"
TASK_MATH = "cost $\\frac{1}{0}$ $ & <b>"
METHOD = "<img src=x onerror=alert(1)>"
MODEL = '<a href="javascript:alert(2)">model</a>'
STREAM = "**bold** _em_ `code` | pipe\n# heading"
COMMAND_ARG = "<svg onload=alert(3)>"
PAYLOADS = (TASK_SCRIPT, TASK_LINK, TASK_MATH, METHOD, MODEL)


def _rename_tasks(run: Path, names: dict[str, str]) -> None:
    """Replace the task names in run.json and every results.json (what a stream with such names would write)."""
    for path in [run / "run.json", *run.glob("*/results.json")]:
        text = path.read_text()
        data = json.loads(text)
        for key in ("tasks",):
            data[key] = [names.get(t, t) for t in data[key]]
        data["task_metrics"] = {names.get(t, t): v for t, v in data["task_metrics"].items()}
        if data.get("subnet_overlap"):
            data["subnet_overlap"]["tasks"] = [names.get(t, t) for t in data["subnet_overlap"]["tasks"]]
        if data.get("stability"):
            for stage in data["stability"]["stages"]:
                stage["stage"] = names.get(stage["stage"], stage["stage"])
        if path.name == "run.json":
            data["command"] = ["losia-cl", "run", COMMAND_ARG]
        path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    run = write_run(root / "run", methods=("losia", METHOD), tasks=("t1", "t2", "t3"), model=MODEL, stream=STREAM)
    _rename_tasks(run, {"t1": TASK_SCRIPT, "t2": TASK_LINK, "t3": TASK_MATH})
    return run


class _Elements(HTMLParser):
    """Every element with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _elements(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def _assert_inert(parsed: _Elements, allowed_urls: set[str]) -> None:
    tags = {tag for tag, _ in parsed.elements}
    assert not tags & {"script", "svg", "iframe", "object", "embed", "b"}, tags
    for tag, attrs in parsed.elements:
        assert not [k for k in attrs if k.startswith("on")], (tag, attrs)
        for key in ("href", "src"):
            if key in attrs:
                assert attrs[key] in allowed_urls or attrs[key].startswith(("#", "data:image/png;base64,")), attrs
                assert "javascript" not in attrs[key].lower()


def test_html_page_shows_every_name_as_text(hostile: Path, tmp_path: Path) -> None:
    files = build_report([hostile], out=tmp_path / "r.html")
    html = files.html.read_text()
    parsed = _elements(html)
    _assert_inert(parsed, set())
    assert {tag for tag, _ in parsed.elements} >= {"img", "table"}
    text = "".join(parsed.text)
    for payload in (*PAYLOADS, COMMAND_ARG):
        assert payload in text, payload
    assert "<script" not in html and "<img src=x" not in html and "<svg" not in html.lower()
    assert parse_page(files.html).images  # still a well-formed page with its figures


def test_markdown_summary_shows_every_name_as_text(hostile: Path, tmp_path: Path) -> None:
    files = build_report([hostile], out=tmp_path / "r.html")
    md = files.markdown.read_text()
    # no raw HTML of any kind and no link or image syntax other than the figure links
    assert not re.search(r"<[A-Za-z/!?]", md), re.findall(r".{20}<[A-Za-z/!?].{20}", md)
    assert not re.search(r"(?<!\\)\]\(javascript", md) and "<javascript" not in md
    links = re.findall(r"(?<!\\)\]\(([^)]*)\)", md)
    assert set(links) == {f"{n}.png" for n in files.figures} | {f"{n}.svg" for n in files.figures}


def test_markdown_renders_to_the_same_text_without_markup(hostile: Path, tmp_path: Path) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    files = build_report([hostile], out=tmp_path / "r.html")
    renderer = markdown_it.MarkdownIt("commonmark").enable("table")  # raw HTML passes through this renderer
    parsed = _elements(renderer.render(files.markdown.read_text()))
    figures = {f"{n}.png" for n in files.figures} | {f"{n}.svg" for n in files.figures}
    _assert_inert(parsed, figures)
    assert {tag for tag, _ in parsed.elements} >= {"table", "img", "h1", "h2"}
    assert not {tag for tag, _ in parsed.elements} & {"h3", "h4", "h5", "h6", "ol", "pre"}
    text = "".join(parsed.text)
    for payload in (TASK_SCRIPT, TASK_LINK, TASK_MATH, METHOD, MODEL, COMMAND_ARG):
        assert payload in text, payload
    assert "**bold** _em_ `code` | pipe # heading" in text  # the stream name, on one line, markup shown as text


def test_compare_escapes_run_labels_too(hostile: Path, tmp_path: Path) -> None:
    other = write_run(tmp_path / "<b>other</b>_run", methods=("lora",), tasks=("t1", "t2", "t3"))
    files = compare_runs([hostile, other], out=tmp_path / "cmp.html")
    assert not re.search(r"<[A-Za-z/!?]", files.markdown.read_text())
    _assert_inert(_elements(files.html.read_text()), set())
    assert "<b>other</b>_run" in "".join(_elements(files.html.read_text()).text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a < b & c", "a &lt; b &amp; c"),
        ("[x](javascript:y)", "\\[x\\](javascript:y)"),
        ("score_matrix_losia", "score_matrix_losia"),
        ("_em_ *b*", "\\_em\\_ \\*b\\*"),
        ("a|b`c`\\", "a\\|b\\`c\\`\\\\"),
        ("line\nbreak", "line break"),
    ],
)
def test_md_text_escapes_markup_characters(text: str, expected: str) -> None:
    assert md_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("# h", "\\# h"), ("- x", "\\- x"), ("3. x", "3\\. x"),
                                                ("    code", "code"), ("+", "\\+")])
def test_md_text_at_a_line_start_cannot_open_a_block(text: str, expected: str) -> None:
    assert md_text(text, line_start=True) == expected
