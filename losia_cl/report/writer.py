"""Where a report goes: the figures a report collects and the files it writes.

* :class:`FigureWriter` is handed to every section; ``writer.figure(...)``
  renders a matplotlib figure and returns the block that shows it;
* :func:`write_report` renders a :class:`~.document.Document` as HTML and
  Markdown and writes them and the figures, atomically and as one group: a
  failure (a full disk) leaves every earlier file as it was and no partial file;
* :func:`resolve_out` turns ``--out`` into the HTML path.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losia_cl.errors import ConfigError, DataError
from losia_cl.files import atomic_write_files

from .document import Document, FigureBlock
from .figures import RenderedFigure, render_figure

logger = logging.getLogger(__name__)

__all__ = ["FigureWriter", "ReportFiles", "check_file_stems", "resolve_out", "slug", "write_report"]


def slug(name: str) -> str:
    """``name`` as a file stem: runs of characters other than letters, digits, ``_ . -`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def check_file_stems(names: dict[str, str], what: str = "methods") -> None:
    """Refuse names that would share a file: the same :func:`slug`, ignoring case (as some file systems do).

    ``names`` maps each name to where it comes from (for the message).
    """
    seen: dict[str, str] = {}
    for name in names:
        stem = slug(name).casefold()
        if stem in seen:
            other = seen[stem]
            raise DataError(
                f"{what} {other!r} ({names[other]}) and {name!r} ({names[name]}) would write the same report files "
                f"(*_{slug(name)}.png); rename one of them"
            )
        seen[stem] = name


class FigureWriter:
    """Collects the figures of one report, to be written into ``out_dir`` by :func:`write_report`."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.figures: list[RenderedFigure] = []

    def figure(self, fig: Any, name: str, title: str, caption: str) -> FigureBlock:
        """Render ``fig`` as ``<name>.png`` and ``<name>.svg``; the block shows it in the page."""
        if any(f.name == name for f in self.figures):
            raise AssertionError(f"figure name {name!r} used twice")
        rendered = render_figure(fig, self.out_dir, name, title, caption)
        self.figures.append(rendered)
        return FigureBlock(rendered)


@dataclass(frozen=True)
class ReportFiles:
    """Every file a report wrote.

    Attributes:
        html: the self-contained page.
        markdown: the Markdown summary (same folder, same stem, ``.md``).
        png: the figures as PNG, in page order.
        svg: the same figures as SVG.
        figures: the figure names (file stems), in page order.
    """

    html: Path
    markdown: Path
    png: tuple[Path, ...]
    svg: tuple[Path, ...]
    figures: tuple[str, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        """All written paths."""
        return (self.html, self.markdown, *self.png, *self.svg)


def resolve_out(out: str | Path | None, default: Path) -> Path:
    """The HTML path: ``default`` for ``None``, ``<folder>/<default name>`` for an existing folder."""
    if out is None:
        return default
    out = Path(out)
    if out.is_dir():
        return out / default.name
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: the report is an HTML file; give a path ending in .html (or a folder)")
    return out


def write_report(doc: Document, out: Path, writer: FigureWriter, root: Path | None = None) -> ReportFiles:
    """Write ``doc`` as ``out`` (HTML) and ``out`` with suffix ``.md`` (Markdown), and the figures beside them.

    All files are written to temporary files first and renamed into place when
    all are complete; an ``OSError`` raises :class:`~losia_cl.errors.WriteError`
    naming the file, with every earlier file left as it was.  With ``root`` every
    file must stay inside that folder (a symbolic link leading elsewhere is refused
    when the files are opened).
    """
    from .html import render_html
    from .markdown import render_markdown

    md = out.with_suffix(".md")
    contents = {out: render_html(doc).encode("utf-8"), md: render_markdown(doc).encode("utf-8")}
    for fig in writer.figures:
        contents[fig.png] = fig.png_bytes
        contents[fig.svg] = fig.svg_bytes
    atomic_write_files(contents, root=root)
    files = ReportFiles(
        html=out,
        markdown=md,
        png=tuple(f.png for f in writer.figures),
        svg=tuple(f.svg for f in writer.figures),
        figures=tuple(f.name for f in writer.figures),
    )
    logger.info("report written to %s (%d figures)", out, len(writer.figures))
    return files
