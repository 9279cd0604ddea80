"""Render a :class:`~.document.Document` as a Markdown summary (figures linked as relative PNG files).

Every string of the document is text, so every string is escaped: ``<``,
``>`` and ``&`` become character references and the characters that start
Markdown syntax (links, images, emphasis, code, tables) are backslash-escaped.
A task, method or model name can therefore neither inject HTML (``<script>``,
``onerror=`` attributes) nor a link (``javascript:`` URLs) into the rendered
summary; it reads as the same text as in the HTML page.
"""

from __future__ import annotations

import re

from .document import Block, Bullets, Document, FigureBlock, Formulas, KeyValues, Notice, Paragraph, TableBlock
from .tables import NS_MARK, Table

__all__ = ["render_markdown", "table_markdown", "md_text"]

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Markdown syntax characters; ``_`` only where it can open or close emphasis (not inside a word)
_SPECIAL = re.compile(r"[\\`*\[\]|~&<>]|(?<![^\W_])_|_(?![^\W_])|\r\n|[\r\n]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _ENTITIES:
        return _ENTITIES[char]
    if char in ("\r\n", "\r", "\n"):
        return " "
    return "\\" + char


def md_text(text: str, *, line_start: bool = False) -> str:
    """``text`` as one line of literal Markdown text (it renders as exactly ``text``, with no markup).

    ``line_start``: the text begins a paragraph or list item, where a leading
    ``#``, ``-``, ``+``, ``=`` or ``1.`` would start a heading or a list.
    """
    text = _SPECIAL.sub(_escape, text)
    if line_start:
        text = text.lstrip()  # four leading spaces would start a code block
        text = re.sub(r"^([#+=-])", r"\\\1", text)  # a heading, a list item, a setext underline
        text = re.sub(r"^(\d{1,9})([.)])", r"\1\\\2", text)  # an ordered list item
    return text


def _code(text: str) -> str:
    """``text`` as a code span: a fence of backticks longer than any run inside, no line breaks, ``|`` escaped."""
    text = re.sub(r"\r\n|[\r\n]", " ", text).replace("|", "\\|")
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table_markdown(table: Table) -> str:
    """A GitHub-flavoured pipe table; best cells in bold, † for not significantly different from the best."""
    header = list(table.header)
    if table.groups:
        cols = header[1:]
        renamed = []
        k = 0
        for label, span in table.groups:
            for c in cols[k:k + span]:
                renamed.append(f"{label}: {c}" if label else c)
            k += span
        header = [header[0], *renamed]
    lines = [f"**{md_text(table.caption)}**", "", "| " + " | ".join(md_text(h) for h in header) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    for label, cells in table.rows:
        out = []
        for cell in cells:
            text = md_text(cell.text)
            if cell.best and text != "—":
                text = f"**{text}**"
            if cell.not_significant:
                text += f" {NS_MARK}"
            out.append(text)
        lines.append("| " + " | ".join([md_text(label), *out]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {md_text(n, line_start=True)}" for n in table.notes)
    return "\n".join(lines)


def _block_md(block: Block) -> str:
    if isinstance(block, Paragraph):
        return md_text(block.text, line_start=True)
    if isinstance(block, Notice):
        return f"> **{'Note' if block.level == 'info' else 'Warning'}:** {md_text(block.text)}"
    if isinstance(block, KeyValues):
        return "\n".join(f"- **{md_text(k)}:** {md_text(v)}" if v else f"- **{md_text(k)}**" for k, v in block.items)
    if isinstance(block, Bullets):
        return "\n".join(f"- {md_text(i, line_start=True)}" for i in block.items)
    if isinstance(block, Formulas):
        lines = ["| quantity | formula | meaning |", "| --- | --- | --- |"]
        lines.extend(f"| {md_text(q)} | {_code(f)} | {md_text(e)} |" for q, f, e in block.items)
        return "\n".join(lines)
    if isinstance(block, TableBlock):
        return table_markdown(block.table)
    if isinstance(block, FigureBlock):
        fig = block.figure
        title = md_text(fig.title)
        return (f"![{title}]({_link(fig.png.name)})\n\n*{title}.* {md_text(fig.caption)} "
                f"(vector: [{md_text(fig.svg.name)}]({_link(fig.svg.name)}))")
    raise TypeError(f"unknown block {type(block).__name__}")


def _link(name: str) -> str:
    """A relative link to a file beside the summary (figure stems are file-name safe; anything else is encoded)."""
    from urllib.parse import quote

    return quote(name, safe="")


def render_markdown(doc: Document) -> str:
    """The summary as Markdown text; image links are relative to the folder the file is written to."""
    parts = [f"# {md_text(doc.title)}", "", f"*{md_text(doc.subtitle)}*", ""]
    for section in doc.sections:
        parts.append(f"## {md_text(section.title)}")
        parts.append("")
        for block in section.blocks:
            parts.append(_block_md(block))
            parts.append("")
    parts.append("---")
    parts.append(f"*{md_text(doc.footer)}*")
    parts.append("")
    return "\n".join(parts)
