"""Render a :class:`~.document.Document` as a Markdown summary (figures linked as relative PNG files)."""

from __future__ import annotations

from .document import Block, Bullets, Document, FigureBlock, Formulas, KeyValues, Notice, Paragraph, TableBlock
from .tables import NS_MARK, Table

__all__ = ["render_markdown", "table_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


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
    lines = [f"**{_cell(table.caption)}**", "", "| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    for label, cells in table.rows:
        out = []
        for cell in cells:
            text = _cell(cell.text)
            if cell.best and text != "—":
                text = f"**{text}**"
            if cell.not_significant:
                text += f" {NS_MARK}"
            out.append(text)
        lines.append("| " + " | ".join([_cell(label), *out]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {_cell(n)}" for n in table.notes)
    return "\n".join(lines)


def _block_md(block: Block) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Notice):
        return f"> **{'Note' if block.level == 'info' else 'Warning'}:** {block.text}"
    if isinstance(block, KeyValues):
        return "\n".join(f"- **{k}:** `{v}`" if v else f"- **{k}**" for k, v in block.items)
    if isinstance(block, Bullets):
        return "\n".join(f"- {i}" for i in block.items)
    if isinstance(block, Formulas):
        lines = ["| quantity | formula | meaning |", "| --- | --- | --- |"]
        lines.extend(f"| {_cell(q)} | `{_cell(f)}` | {_cell(e)} |" for q, f, e in block.items)
        return "\n".join(lines)
    if isinstance(block, TableBlock):
        return table_markdown(block.table)
    if isinstance(block, FigureBlock):
        fig = block.figure
        return f"![{fig.title}]({fig.png.name})\n\n*{fig.title}.* {fig.caption} (vector: [{fig.svg.name}]({fig.svg.name}))"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(doc: Document) -> str:
    """The summary as Markdown text; image links are relative to the folder the file is written to."""
    parts = [f"# {doc.title}", "", f"*{doc.subtitle}*", ""]
    for section in doc.sections:
        parts.append(f"## {section.title}")
        parts.append("")
        for block in section.blocks:
            parts.append(_block_md(block))
            parts.append("")
    parts.append("---")
    parts.append(f"*{doc.footer}*")
    parts.append("")
    return "\n".join(parts)
