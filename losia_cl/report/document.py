"""A small document model shared by the HTML and Markdown writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .figures import RenderedFigure
from .tables import Table

__all__ = ["Paragraph", "Notice", "KeyValues", "Bullets", "Formulas", "TableBlock", "FigureBlock", "Section",
           "Explanation", "Document", "Block"]


@dataclass
class Paragraph:
    text: str


@dataclass
class Notice:
    """A highlighted message (``level``: ``warning`` or ``info``)."""

    text: str
    level: str = "warning"


@dataclass
class KeyValues:
    items: list[tuple[str, str]]


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Formulas:
    """``(quantity, formula, explanation)`` rows of the "how to read this" section."""

    items: list[tuple[str, str, str]]


@dataclass
class TableBlock:
    table: Table


@dataclass
class FigureBlock:
    figure: RenderedFigure


Block = Union[Paragraph, Notice, KeyValues, Bullets, Formulas, TableBlock, FigureBlock]


@dataclass
class Explanation:
    """Formulas a section adds to the "How to read this" section, under ``heading``."""

    heading: str
    formulas: list[tuple[str, str, str]]


@dataclass
class Section:
    """One section of the page; ``explanation`` (if any) goes into the "How to read this" section."""

    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    explanation: Explanation | None = None


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]
    footer: str

    @property
    def figures(self) -> list[RenderedFigure]:
        return [b.figure for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]
