r"""Overlap of the LoSiA subnets trained on different tasks.

LoSiA trains, in each target matrix ``W`` (``d_out × d_in``), a block
``W[R, C]`` and re-localizes ``(R, C)`` several times per task.  The
:class:`SubnetOverlapTracker` is fed every block a matrix trains and answers,
for each matrix and each pair of tasks ``a, b``:

* **coverage** of a task: ``Cov_a = ∪_k R_k × C_k`` over the blocks trained
  during task ``a`` (a set of matrix entries);
* **coverage Jaccard** ``J(a, b) = |Cov_a ∩ Cov_b| / |Cov_a ∪ Cov_b|``;
* **final rows / final columns Jaccard**: ``|R_a ∩ R_b| / |R_a ∪ R_b|`` for the
  last block of each task (and the same for columns);
* **cumulative coverage** after task ``t``: ``|∪_{a ≤ t} Cov_a| / (d_out·d_in)``;
* **chance level** and the **ratio to chance** ``J(a, b) / J_chance(a, b)``.

Chance model.  Keep ``Cov_a`` fixed and relabel the rows and the columns of
``Cov_b`` by independent uniformly random permutations (this keeps its block
structure and its size).  Every entry is then in the relabelled ``Cov_b`` with
probability ``|Cov_b| / N``, ``N = d_out·d_in``, so exactly::

    E|Cov_a ∩ Cov_b| = |Cov_a| · |Cov_b| / N
    J_chance = E|∩| / (|Cov_a| + |Cov_b| − E|∩|)

(a ratio of expectations).  For two single blocks ``|R_a|×|C_a|`` and
``|R_b|×|C_b|`` this is ``E|∩| = (|R_a||R_b| / d_out) · (|C_a||C_b| / d_in)``,
and for equal sizes ``(|R|²/d_out)(|C|²/d_in)``.  Row and column Jaccards use
the same formula with ``N = d_out`` or ``d_in``.

Storage.  Each block is kept as two packed bitmaps of ``d_out/8`` and
``d_in/8`` bytes (the index vectors, losslessly), repeated blocks within a task
once; memory grows with the number of distinct blocks, never with
``d_out·d_in``.  Areas and intersections are computed exactly from the blocks,
a band of rows at a time: within the band each task's coverage is a transient
packed bitmap OR-ed together from its blocks, and intersections are popcounts.
The band buffer is bounded by :data:`CHUNK_BYTES` (16 MiB) whatever the matrix
size.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losia_cl.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["SubnetOverlapTracker", "chance_jaccard", "CHUNK_BYTES"]

#: Upper bound on the bytes of the transient band of packed coverage bitmaps (all tasks together).
CHUNK_BYTES = 1 << 24

_FORMAT = "losia_cl.subnet_overlap"
_VERSION = 1


def chance_jaccard(size_a: float, size_b: float, total: float) -> float | None:
    """Chance Jaccard of two sets of sizes ``size_a``, ``size_b`` in a universe of ``total`` elements.

    ``E = size_a·size_b/total`` is the expected intersection when one set is
    relabelled at random (rows and columns independently, for a matrix);
    returns ``E / (size_a + size_b − E)``, or ``None`` when both sets are empty.
    """
    if total <= 0:
        raise ConfigError(f"chance_jaccard: total must be positive, got {total}")
    expected = size_a * size_b / total
    union = size_a + size_b - expected
    return None if union <= 0 else float(expected / union)


def _to_index_array(values: Any, size: int, what: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a 1-D index vector, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{what}: the index vector is empty; a trained block has at least one index")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{what}: indices must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= size:
        raise DataError(f"{what}: indices must lie in [0, {size}), got range [{lo}, {hi}]")
    return arr


def _pack(indices: np.ndarray, size: int) -> np.ndarray:
    bits = np.zeros(size, dtype=np.uint8)
    bits[indices] = 1
    return np.packbits(bits)


def _unpack(packed: np.ndarray, size: int) -> np.ndarray:
    return np.unpackbits(packed, count=size).astype(bool)


def _encode(packed: np.ndarray) -> str:
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _decode(text: str, size: int, what: str) -> np.ndarray:
    try:
        raw = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    except (ValueError, AttributeError) as exc:
        raise DataError(f"{what}: not a base64 bitmap ({exc})") from None
    if raw.size != (size + 7) // 8:
        raise DataError(f"{what}: bitmap has {raw.size} bytes, expected {(size + 7) // 8}")
    if not raw.any():
        raise DataError(f"{what}: bitmap is empty")
    return raw.copy()


def _popcount(packed: np.ndarray) -> int:
    return int(_popcount_all(packed))


@dataclass
class _TaskBlocks:
    """The distinct blocks one matrix trained during one task, and which was trained last."""

    rows: list[np.ndarray] = field(default_factory=list)  # packed row bitmaps
    cols: list[np.ndarray] = field(default_factory=list)  # packed column bitmaps
    final: int = -1
    _index: dict[bytes, int] = field(default_factory=dict, repr=False)

    def add(self, rows: np.ndarray, cols: np.ndarray) -> None:
        key = rows.tobytes() + b"|" + cols.tobytes()
        found = self._index.get(key)
        if found is None:
            found = len(self.rows)
            self.rows.append(rows)
            self.cols.append(cols)
            self._index[key] = found
        self.final = found


@dataclass
class _Matrix:
    shape: tuple[int, int]
    layer: int | None
    tasks: dict[str, _TaskBlocks] = field(default_factory=dict)


def _jaccard(inter: float, size_a: float, size_b: float) -> float | None:
    union = size_a + size_b - inter
    return None if union <= 0 else float(inter / union)


def _mean_defined(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(math.fsum(vals) / len(vals)) if vals else None


if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def _popcount_all(packed: np.ndarray, axis: Any = None) -> Any:
        return np.bitwise_count(packed).sum(axis=axis, dtype=np.int64)

else:  # pragma: no cover - numpy 1.x
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount_all(packed: np.ndarray, axis: Any = None) -> Any:
        return _POP8[packed].sum(axis=axis, dtype=np.int64)


def _coverage_counts(
    groups: Sequence[_TaskBlocks | None], d_out: int, d_in: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``|Cov_g ∩ Cov_h|`` for all groups (diagonal = ``|Cov_g|``) and ``|∪_{h ≤ g} Cov_h|``.

    Works on a band of rows at a time: for each group a packed bitmap of the
    band (``rows × d_in/8`` bytes) is OR-ed together from the blocks' packed
    column bitmaps, then intersections are popcounts of ANDs.  Work is
    ``O(Σ_k |R_k| · d_in/8 + G² · d_out · d_in/16)`` byte operations for blocks
    ``R_k × C_k`` and ``G`` groups; the band buffer holds at most
    :data:`CHUNK_BYTES` bytes (at least one row per group).
    """
    n_groups = len(groups)
    blocks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (group, sorted row indices, packed cols)
    for g, tb in enumerate(groups):
        if tb is None:
            continue
        for rows, cols in zip(tb.rows, tb.cols):
            blocks.append((g, np.flatnonzero(_unpack(rows, d_out)), cols))
    inter = np.zeros((n_groups, n_groups), dtype=np.int64)
    cumulative = np.zeros(n_groups, dtype=np.int64)
    if not blocks:
        return inter, cumulative
    present = sorted({g for g, _, _ in blocks})
    width = (d_in + 7) // 8
    band = max(1, CHUNK_BYTES // (n_groups * width))
    for start in range(0, d_out, band):
        stop = min(d_out, start + band)
        covered = np.zeros((n_groups, stop - start, width), dtype=np.uint8)
        for g, rows, cols in blocks:
            lo, hi = np.searchsorted(rows, (start, stop))
            if hi > lo:
                local = rows[lo:hi] - start
                covered[g, local] |= cols
        for i, a in enumerate(present):
            for b in present[i:]:
                both = covered[a] if a == b else np.bitwise_and(covered[a], covered[b])
                inter[a, b] += _popcount_all(both)
        running = np.bitwise_or.accumulate(covered, axis=0)
        cumulative += _popcount_all(running, axis=(1, 2))
    return inter + np.triu(inter, 1).T, cumulative


class SubnetOverlapTracker:
    """Collects the (rows, cols) blocks every target matrix trains per task; measures their overlap.

    Feed it at every re-localization (and once at the start of each task)::

        tracker = SubnetOverlapTracker()
        tracker.record("task-1", {"model.layers.0.self_attn.q_proj": (rows, cols), ...},
                       shapes={"model.layers.0.self_attn.q_proj": (576, 576), ...})
        ...
        summary = tracker.summary()          # JSON-able dict
        state = tracker.to_dict()            # JSON-able, for checkpoints
        tracker = SubnetOverlapTracker.from_dict(state)

    ``rows``/``cols`` are 1-D integer index vectors (numpy arrays, lists or
    torch tensors on any device); duplicates are ignored.  A matrix's shape
    ``(d_out, d_in)`` must be given (``shapes`` or :meth:`register`) the first
    time it appears.  Its layer index, used by the per-layer profile, is taken
    from ``layers`` / :meth:`register` (matrices without one are left out of
    the profile).
    Tasks are ordered by first appearance; task ids are stored as strings.
    """

    def __init__(self) -> None:
        self._tasks: list[str] = []
        self._matrices: dict[str, _Matrix] = {}

    # ---- feeding

    @property
    def tasks(self) -> list[str]:
        """Task ids in the order they were first seen."""
        return list(self._tasks)

    @property
    def matrix_names(self) -> list[str]:
        """Names of the registered matrices, in registration order."""
        return list(self._matrices)

    def start_task(self, task: Any) -> str:
        """Declare a task (so that it appears even if no block is recorded); returns its string id."""
        key = str(task)
        if key not in self._tasks:
            self._tasks.append(key)
        return key

    def register(self, name: str, shape: Sequence[int], layer: int | None = None) -> None:
        """Declare matrix ``name`` of shape ``(d_out, d_in)`` with an optional layer index."""
        try:
            ok = len(shape) == 2 and all(int(d) == d and d >= 1 for d in shape)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"matrix {name!r}: shape must be (d_out, d_in) with positive ints, got {shape!r}")
        shp = (int(shape[0]), int(shape[1]))
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))):
            raise ConfigError(f"matrix {name!r}: layer must be an int, got {layer!r}")
        known = self._matrices.get(name)
        if known is None:
            self._matrices[name] = _Matrix(shape=shp, layer=None if layer is None else int(layer))
            return
        if known.shape != shp:
            raise ConfigError(f"matrix {name!r}: shape {shp} differs from the registered {known.shape}")
        if layer is not None:
            known.layer = int(layer)

    def record(
        self,
        task: Any,
        subnets: Mapping[str, tuple[Any, Any]],
        shapes: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
        layers: Mapping[str, int] | None = None,
    ) -> None:
        """Record that during ``task`` each matrix ``name`` trained the block ``subnets[name] = (rows, cols)``.

        ``shapes`` is a dict ``{name: (d_out, d_in)}`` or one ``(d_out, d_in)``
        for every matrix in ``subnets``; needed for matrices not registered yet.
        The last block recorded for a matrix in a task is its *final* block.
        """
        key = self.start_task(task)
        for name, block in subnets.items():
            if name not in self._matrices or shapes is not None or layers is not None:
                if isinstance(shapes, Mapping):
                    shape = shapes.get(name)
                else:
                    shape = shapes
                layer = None if layers is None else layers.get(name)
                if shape is None:
                    if name not in self._matrices:
                        raise ConfigError(
                            f"matrix {name!r}: its shape (d_out, d_in) is unknown; pass shapes= "
                            "or call register() first"
                        )
                    shape = self._matrices[name].shape
                self.register(name, shape, layer)
            mat = self._matrices[name]
            try:
                rows, cols = block
            except (TypeError, ValueError):
                raise DataError(f"matrix {name!r}: expected a (rows, cols) pair") from None
            d_out, d_in = mat.shape
            r = _to_index_array(rows, d_out, f"matrix {name!r} task {key!r} rows")
            c = _to_index_array(cols, d_in, f"matrix {name!r} task {key!r} cols")
            mat.tasks.setdefault(key, _TaskBlocks()).add(_pack(r, d_out), _pack(c, d_in))

    # ---- measuring

    def matrix_stats(self, name: str) -> dict[str, Any]:
        """Overlap statistics of one matrix (JSON-able); see the module docstring.

        Keys: ``shape``, ``layer``, ``blocks`` (distinct blocks per task),
        ``coverage`` (fraction of entries trained in each task),
        ``cumulative_coverage`` (after each task), ``coverage_jaccard``,
        ``coverage_jaccard_chance``, ``coverage_jaccard_ratio``,
        ``final_rows_jaccard``, ``final_cols_jaccard`` (task × task lists; an
        entry is ``None`` when undefined: a task that trained nothing, a
        diagonal chance/ratio), ``mean_jaccard``, ``mean_ratio``,
        ``mean_rows_jaccard``, ``mean_cols_jaccard`` (means over task pairs a < b).
        """
        try:
            mat = self._matrices[name]
        except KeyError:
            raise DataError(f"no matrix {name!r} was recorded; known: {sorted(self._matrices)}") from None
        d_out, d_in = mat.shape
        total = d_out * d_in
        groups = [mat.tasks.get(t) for t in self._tasks]
        inter, cumulative = _coverage_counts(groups, d_out, d_in)
        n = len(self._tasks)
        sizes = np.diag(inter)

        def final_sets(which: str) -> list[np.ndarray | None]:
            out: list[np.ndarray | None] = []
            for tb in groups:
                out.append(None if tb is None or not tb.rows else getattr(tb, which)[tb.final])
            return out

        final_rows, final_cols = final_sets("rows"), final_sets("cols")
        jac: list[list[float | None]] = [[None] * n for _ in range(n)]
        chance: list[list[float | None]] = [[None] * n for _ in range(n)]
        ratio: list[list[float | None]] = [[None] * n for _ in range(n)]
        rows_j: list[list[float | None]] = [[None] * n for _ in range(n)]
        cols_j: list[list[float | None]] = [[None] * n for _ in range(n)]
        for a in range(n):
            for b in range(n):
                if sizes[a] == 0 or sizes[b] == 0:
                    continue
                jac[a][b] = _jaccard(float(inter[a, b]), float(sizes[a]), float(sizes[b]))
                for sets, out in ((final_rows, rows_j), (final_cols, cols_j)):
                    x, y = sets[a], sets[b]
                    both = _popcount(np.bitwise_and(x, y))
                    out[a][b] = _jaccard(both, _popcount(x), _popcount(y))
                if a != b:
                    chance[a][b] = chance_jaccard(float(sizes[a]), float(sizes[b]), total)
                    if chance[a][b]:
                        ratio[a][b] = jac[a][b] / chance[a][b]
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
        return {
            "shape": [d_out, d_in],
            "layer": mat.layer,
            "blocks": [0 if tb is None else len(tb.rows) for tb in groups],
            "coverage": [float(s / total) for s in sizes],
            "cumulative_coverage": [float(c / total) for c in cumulative],
            "coverage_jaccard": jac,
            "coverage_jaccard_chance": chance,
            "coverage_jaccard_ratio": ratio,
            "final_rows_jaccard": rows_j,
            "final_cols_jaccard": cols_j,
            "mean_jaccard": _mean_defined(jac[a][b] for a, b in pairs),
            "mean_ratio": _mean_defined(ratio[a][b] for a, b in pairs),
            "mean_rows_jaccard": _mean_defined(rows_j[a][b] for a, b in pairs),
            "mean_cols_jaccard": _mean_defined(cols_j[a][b] for a, b in pairs),
        }

    def summary(self, per_matrix: bool = True) -> dict[str, Any]:
        """JSON-able summary over all matrices.

        Task × task matrices (``coverage_jaccard``, ``coverage_jaccard_chance``,
        ``coverage_jaccard_ratio``, ``final_rows_jaccard``,
        ``final_cols_jaccard``) are means over the matrices where the entry is
        defined (the ratio is the mean of per-matrix ratios).  ``task_coverage``
        and ``cumulative_coverage`` are means over matrices of the covered
        fractions; ``cumulative_coverage_entries`` is the covered fraction of all
        entries of all matrices together.  ``per_layer`` maps each layer index
        (as a string) to the means of its matrices' ``mean_jaccard``,
        ``mean_ratio``, ``mean_rows_jaccard``, ``mean_cols_jaccard`` and
        ``cumulative_coverage``.  ``per_matrix`` holds :meth:`matrix_stats` of
        every matrix (left out with ``per_matrix=False``).
        """
        n = len(self._tasks)
        stats = {name: self.matrix_stats(name) for name in self._matrices}

        def mean_matrix(key: str) -> list[list[float | None]]:
            return [
                [_mean_defined(s[key][a][b] for s in stats.values()) for b in range(n)] for a in range(n)
            ]

        def mean_curve(key: str, group: Iterable[dict[str, Any]]) -> list[float | None]:
            group = list(group)
            return [_mean_defined(s[key][t] for s in group) for t in range(n)]

        entries = sum(s["shape"][0] * s["shape"][1] for s in stats.values())
        covered = [
            sum(s["cumulative_coverage"][t] * s["shape"][0] * s["shape"][1] for s in stats.values())
            for t in range(n)
        ]
        layers: dict[int, list[dict[str, Any]]] = {}
        for s in stats.values():
            if s["layer"] is not None:
                layers.setdefault(s["layer"], []).append(s)
        per_layer = {
            str(layer): {
                "matrices": len(group),
                "mean_jaccard": _mean_defined(s["mean_jaccard"] for s in group),
                "mean_ratio": _mean_defined(s["mean_ratio"] for s in group),
                "mean_rows_jaccard": _mean_defined(s["mean_rows_jaccard"] for s in group),
                "mean_cols_jaccard": _mean_defined(s["mean_cols_jaccard"] for s in group),
                "cumulative_coverage": mean_curve("cumulative_coverage", group),
            }
            for layer, group in sorted(layers.items())
        }
        out: dict[str, Any] = {
            "tasks": list(self._tasks),
            "num_matrices": len(stats),
            "chance_model": "E|A∩B| = |A||B|/(d_out*d_in); chance J = E/(|A|+|B|-E)",
            "coverage_jaccard": mean_matrix("coverage_jaccard"),
            "coverage_jaccard_chance": mean_matrix("coverage_jaccard_chance"),
            "coverage_jaccard_ratio": mean_matrix("coverage_jaccard_ratio"),
            "final_rows_jaccard": mean_matrix("final_rows_jaccard"),
            "final_cols_jaccard": mean_matrix("final_cols_jaccard"),
            "task_coverage": mean_curve("coverage", stats.values()),
            "cumulative_coverage": mean_curve("cumulative_coverage", stats.values()),
            "cumulative_coverage_entries": [c / entries if entries else None for c in covered],
            "per_layer": per_layer,
        }
        if per_matrix:
            out["per_matrix"] = stats
        return out

    # ---- checkpoints

    def to_dict(self) -> dict[str, Any]:
        """The full state as a JSON-able dict; blocks are base64-encoded packed bitmaps."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "tasks": list(self._tasks),
            "matrices": {
                name: {
                    "shape": list(mat.shape),
                    "layer": mat.layer,
                    "blocks": {
                        task: {
                            "rows": [_encode(r) for r in tb.rows],
                            "cols": [_encode(c) for c in tb.cols],
                            "final": tb.final,
                        }
                        for task, tb in mat.tasks.items()
                    },
                }
                for name, mat in self._matrices.items()
            },
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> SubnetOverlapTracker:
        """Rebuild a tracker from :meth:`to_dict` output; malformed state raises DataError."""
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise DataError(f"subnet overlap state: not a {_FORMAT!r} dict")
        if state.get("version") != _VERSION:
            raise DataError(f"subnet overlap state: version {state.get('version')!r}, expected {_VERSION}")
        tracker = cls()
        try:
            for task in state["tasks"]:
                tracker.start_task(task)
            for name, entry in state["matrices"].items():
                tracker.register(name, entry["shape"], entry["layer"])
                mat = tracker._matrices[name]
                d_out, d_in = mat.shape
                for task, blocks in entry["blocks"].items():
                    if task not in tracker._tasks:
                        raise DataError(f"subnet overlap state: matrix {name!r} has unknown task {task!r}")
                    rows, cols, final = blocks["rows"], blocks["cols"], blocks["final"]
                    if len(rows) != len(cols) or not rows or not 0 <= final < len(rows):
                        raise DataError(f"subnet overlap state: matrix {name!r} task {task!r} blocks malformed")
                    tb = _TaskBlocks()
                    for k, (r, c) in enumerate(zip(rows, cols)):
                        what = f"subnet overlap state: matrix {name!r} task {task!r} block {k}"
                        tb.add(_decode(r, d_out, what + " rows"), _decode(c, d_in, what + " cols"))
                    if len(tb.rows) != len(rows):
                        raise DataError(f"subnet overlap state: matrix {name!r} task {task!r} repeats a block")
                    tb.final = final
                    mat.tasks[task] = tb
        except DataError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise DataError(f"subnet overlap state: missing or malformed field ({type(exc).__name__}: {exc})") from None
        return tracker
