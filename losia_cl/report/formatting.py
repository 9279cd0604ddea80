"""How numbers are written in the report (HTML, Markdown and figure cells alike)."""

from __future__ import annotations

import math

__all__ = ["fmt_score", "fmt_count", "fmt_seconds", "fmt_bytes", "fmt_value", "fmt_stat", "fmt_p", "SCORE_DECIMALS"]

#: decimals of every score and CL metric (scores are on a 0–1 scale).
SCORE_DECIMALS = 3

_BYTE_UNITS = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def fmt_score(value: float | None, decimals: int = SCORE_DECIMALS) -> str:
    """``0.734``; ``—`` for ``None``/NaN; never ``-0.000``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def fmt_count(value: float | None) -> str:
    """``1,234,567``."""
    if value is None:
        return "—"
    return f"{round(value):,}"


def _seconds_unit(value: float) -> tuple[float, str]:
    if value < 120:
        return 1.0, "s"
    if value < 7200:
        return 60.0, "min"
    return 3600.0, "h"


def fmt_seconds(value: float | None, spread: float | None = None) -> str:
    """``12.3 s``, ``4.5 min``, ``2.10 h``; with a spread, ``12.3 ± 0.4 s``."""
    if value is None:
        return "—"
    scale, unit = _seconds_unit(value)
    return _fmt_scaled(value, spread, scale, unit, 2 if unit == "h" else 1)


def _bytes_unit(value: float) -> tuple[float, str]:
    for scale, unit in _BYTE_UNITS:
        if value >= scale:
            return float(scale), unit
    return 1.0, "B"


def fmt_bytes(value: float | None, spread: float | None = None) -> str:
    """``1.23 GiB``; with a spread, ``1.23 ± 0.05 GiB``."""
    if value is None:
        return "—"
    scale, unit = _bytes_unit(value)
    return _fmt_scaled(value, spread, scale, unit, 0 if unit == "B" else 2)


def _fmt_scaled(value: float, spread: float | None, scale: float, unit: str, digits: int) -> str:
    """``value`` (and ``± spread``) divided by ``scale`` with ``digits`` decimals, then ``unit``."""
    if spread is None:
        return f"{value / scale:.{digits}f} {unit}"
    return f"{value / scale:.{digits}f} ± {spread / scale:.{digits}f} {unit}"


def fmt_value(kind: str, value: float | None) -> str:
    """One value of a column ``kind`` (``score``, ``count``, ``seconds``, ``bytes``)."""
    if kind == "score":
        return fmt_score(value)
    if kind == "count":
        return fmt_count(value)
    if kind == "seconds":
        return fmt_seconds(value)
    if kind == "bytes":
        return fmt_bytes(value)
    raise ValueError(f"unknown column kind {kind!r}")


def fmt_stat(kind: str, mean: float | None, half_width: float | None) -> str:
    """``mean`` alone, or ``mean ± half_width`` in the column's unit."""
    if mean is None:
        return "—"
    if half_width is None:
        return fmt_value(kind, mean)
    if kind == "score":
        return f"{fmt_score(mean)} ± {fmt_score(half_width)}"
    if kind == "count":
        return f"{fmt_count(mean)} ± {fmt_count(half_width)}"
    if kind == "seconds":
        return fmt_seconds(mean, half_width)
    return fmt_bytes(mean, half_width)


def fmt_p(p: float) -> str:
    """A p-value: ``0.31``, ``0.004``, ``< 0.001``."""
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return f"{p:.2f}"
