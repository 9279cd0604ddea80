"""Render a :class:`~.document.Document` as one self-contained HTML page.

Images are embedded as ``data:image/png;base64`` URIs and the style sheet is
inline: the page opens from disk with no network access and holds no links
to other sites.
"""

from __future__ import annotations

import base64
from html import escape

from .document import (
    Block,
    Bullets,
    Document,
    FigureBlock,
    Formulas,
    KeyValues,
    Notice,
    Paragraph,
    TableBlock,
)
from .tables import NS_MARK, Table

__all__ = ["render_html", "table_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } .subtitle { color: #666; margin-top: 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
nav ul { padding-left: 1.2em; columns: 2; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } th.row { text-align: left; }
td.best { font-weight: 700; background: #e7f4e4; }
td.diag { background: #eef3fb; }
td.missing { color: #999; }
.ns { color: #a05a00; font-weight: 400; }
.notes { font-size: 0.85em; color: #444; }
.notice { padding: 0.6em 0.9em; border-radius: 4px; margin: 0.8em 0; }
.notice.warning { background: #fff4e0; border: 1px solid #f0c27b; }
.notice.info { background: #eef5fd; border: 1px solid #a9c8ef; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #444; max-width: 900px; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.kv dt { font-weight: 600; } dl.kv dd { margin: 0; font-family: ui-monospace, monospace; font-size: 0.9em;
  overflow-wrap: anywhere; }
table.formulas td { text-align: left; white-space: normal; vertical-align: top; }
table.formulas td.formula { font-family: ui-monospace, monospace; }
footer { margin-top: 3em; font-size: 0.8em; color: #777; }
"""


def table_html(table: Table) -> str:
    """One ``<table>``: optional group row, header, one row per method/stage; best cells bold, † for n.s."""
    lines = [f'<table class="{escape(table.css)}">', f"<caption>{escape(table.caption)}</caption>", "<thead>"]
    if table.groups:
        cells = "".join(f'<th colspan="{span}">{escape(label)}</th>' for label, span in table.groups)
        lines.append(f"<tr><th></th>{cells}</tr>")
    lines.append("<tr>" + "".join(f'<th scope="col">{escape(h)}</th>' for h in table.header) + "</tr>")
    lines.append("</thead>")
    lines.append("<tbody>")
    for label, cells in table.rows:
        parts = [f'<th scope="row" class="row">{escape(label)}</th>']
        for cell in cells:
            classes = " ".join(c for c in (cell.css, "best" if cell.best else "") if c)
            attrs = f' class="{classes}"' if classes else ""
            if cell.title:
                attrs += f' title="{escape(cell.title)}"'
            text = escape(cell.text)
            if cell.not_significant:
                text += f'<span class="ns" title="not significantly different from the best (paired t-test, Holm-adjusted)">{NS_MARK}</span>'
            parts.append(f"<td{attrs}>{text}</td>")
        lines.append("<tr>" + "".join(parts) + "</tr>")
    lines.append("</tbody></table>")
    if table.notes:
        lines.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(lines)


def _block_html(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Notice):
        return f'<div class="notice {escape(block.level)}">{escape(block.text)}</div>'
    if isinstance(block, KeyValues):
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in block.items)
        return f'<dl class="kv">{items}</dl>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Formulas):
        rows = "".join(
            f'<tr><td>{escape(q)}</td><td class="formula">{escape(f)}</td><td>{escape(e)}</td></tr>'
            for q, f, e in block.items
        )
        return ('<table class="formulas"><thead><tr><th>quantity</th><th>formula</th><th>meaning</th></tr>'
                f"</thead><tbody>{rows}</tbody></table>")
    if isinstance(block, TableBlock):
        return table_html(block.table)
    if isinstance(block, FigureBlock):
        fig = block.figure
        data = base64.b64encode(fig.png_bytes).decode("ascii")
        return (
            f'<figure id="fig-{escape(fig.name)}" data-figure="{escape(fig.name)}">'
            f'<img src="data:image/png;base64,{data}" alt="{escape(fig.title)}">'
            f"<figcaption><strong>{escape(fig.title)}.</strong> {escape(fig.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(doc: Document) -> str:
    """The whole page as a string."""
    toc = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>' for s in doc.sections)
    body = []
    for section in doc.sections:
        body.append(f'<section id="{escape(section.anchor)}"><h2>{escape(section.title)}</h2>')
        body.extend(_block_html(b) for b in section.blocks)
        body.append("</section>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(doc.title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(doc.title)}</h1>",
            f'<p class="subtitle">{escape(doc.subtitle)}</p>',
            f"<nav><ul>{toc}</ul></nav>",
            *body,
            f"<footer>{escape(doc.footer)}</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )
