r"""Holm's step-down correction of a family of p-values (Holm 1979).

With ``m`` tests sorted so that ``p_(1) ≤ … ≤ p_(m)``, the adjusted p-values are

    ``p̃_(i) = min(1, max_{k ≤ i} (m − k + 1) · p_(k))``

and a test is rejected at family-wise error rate ``α`` when ``p̃ < α``.  This is the same decision as Holm's
sequential procedure (reject ``p_(1) < α/m``, then ``p_(2) < α/(m−1)``, … until the first acceptance), it
controls the family-wise error rate under any dependence between the tests, and it never rejects less than
Bonferroni (``min(1, m · p)``).

A ``None`` in the input (a test that could not be run) is passed through as ``None`` and does not count in
``m``.  Pure function; no numpy needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from losia_cl.errors import DataError

__all__ = ["holm"]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the order given (``None`` stays ``None`` and is not counted in ``m``)."""
    indexed: list[tuple[float, int]] = []
    for i, p in enumerate(pvalues):
        if p is None:
            continue
        p = float(p)
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise DataError(f"Holm correction: p-value #{i + 1} is {p!r}, not a number in [0, 1]")
        indexed.append((p, i))
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
