r"""Weight dimensional stability: how much training moved each target matrix's principal structure.

For every target matrix ``W`` (``d_out × d_in``, ``n = min(d_out, d_in)``,
singular values ``σ_1 ≥ … ≥ σ_n``, top-k left/right singular vectors
``U_k``, ``V_k``) and every stage ``t``, against the base ``W₀`` and against
the previous stage:

* **principal-subspace similarity** ``s_L = ‖U₀ᵀ U_t‖²_F / k`` and
  ``s_R = ‖V₀ᵀ V_t‖²_F / k`` — the mean squared cosine of the k principal
  angles between the two subspaces (``scipy.linalg.subspace_angles`` gives the
  angles); 1 = same subspace, ``k/d`` = chance for a random subspace;
* **spectral drift** ``‖σ(W_t) − σ(W₀)‖₂ / ‖σ(W₀)‖₂`` (note ``‖σ(W)‖₂ = ‖W‖_F``);
* **effective rank** (Roy & Vetterli 2007) ``erank = exp(−Σ_i p_i log p_i)``,
  ``p_i = σ_i / ‖σ‖₁``, of ``W_t`` and of the update ``ΔW = W_t − W₀``;
* **stable rank** ``‖W‖²_F / σ_1²`` of ``W_t`` and of ``ΔW``.

Singular values at most ``σ_1 · max(d_out, d_in) · eps₃₂`` (the float32
rounding level of stored weights) count as zero, so a rank-r matrix has
``erank ≤ r``.

Exact and randomized spectra
----------------------------
With ``method="auto"`` a matrix with ``min(d_out, d_in) ≤ exact_max_dim`` gets
an exact decomposition: by default (``exact_solver="gram"``) the
eigendecomposition of the float64 Gram matrix of the smaller side (``WᵀW`` or
``WWᵀ``, ``σ_i = sqrt(λ_i)``, the other side's top-k vectors ``W V_k / σ_k``),
whose singular values are accurate to ``~sqrt(max(d_out, d_in)·eps₆₄)·σ_1``
(≈ 6e-7·σ_1 at 1536, far below the zero threshold), or
``exact_solver="svd"`` for ``torch.linalg.svd`` / ``svdvals``.  A larger one gets
a randomized SVD (``torch.svd_lowrank`` with ``q = spectrum_rank + oversample``
columns and ``n_iter`` power iterations, seeded) that keeps the head
``σ_1..σ_h`` (``h = spectrum_rank``) and the top-k vectors.  ``‖W‖²_F`` is
computed directly (float32 row sums, float64 total: relative error ~1e-6), so
the *tail energy* ``E = ‖W‖²_F − Σ_{i≤h} σ_i²`` is known (``E ≤ ‖W‖²_F ·
max(d_out, d_in) · eps₃₂`` is rounding noise and means "no tail").  Which quantities become approximate, and how:

* subspace similarity, stable rank, ``‖ΔW‖_F/‖W₀‖_F``: only through the
  accuracy of the top-k vectors and of ``σ_1`` (error ∝ ``(σ_q/σ_k)^(2·n_iter+1)``,
  negligible for ``k ≪ q``); the Frobenius norms are direct (~1e-6);
* effective rank: the ``n − h`` missing values are modelled with exactly the
  tail energy ``E``.  ``tail_model="power"`` (default) continues the head with
  ``σ_i = c·(i/h)^(−α)``, ``α`` = minus the log-log slope of ``σ_{h/2..h}``
  clamped to ``[0, 3]``, ``c`` from ``E`` (falls back to flat when that tail
  would start above ``1.25·σ_h``); ``tail_model="flat"`` uses
  ``σ_i = sqrt(E/(n−h))``, which over-estimates erank when the spectrum decays.
  Then ``‖σ‖₁ = Σ_head σ_i + Σ_tail σ_i`` and the entropy runs over head and tail;
* spectral drift: heads compared value by value, tails by energy only:
  ``sqrt(Σ_{i≤h} (σ_i − σ'_i)² + (sqrt(E) − sqrt(E'))²) / ‖W'‖_F``.  The tail
  term is a lower bound of the true one (reverse triangle inequality), so the
  drift is under-estimated when the change sits in the bulk of the spectrum;
  it is exact for changes confined to the head and for rescalings.

Measured on 512 × 768 matrices (``tests/test_metrics_stability.py``,
``h = 128``): subspace similarity and stable ranks agree with exact within
1e-3 (observed < 1e-6); effective rank within 8 % (observed 2 % for a
power-law spectrum, 6 % for a noise-like ``ΔW``; 0.2 % on pure power laws with
``h = 32..64``); spectral drift between 0.5× and 1× the exact value (observed
0.74× for a base + low-rank + noise update).  Results carry
``approximate: True`` when the randomized path was used.

Snapshots
---------
:class:`StabilityTracker` takes the base weights once and keeps per matrix only
``U₀[:, :k]``, ``V₀[:, :k]``, the head of ``σ₀`` and ``‖W₀‖_F`` (plus the same
for the previous stage), so the base SVD is never recomputed; ``ΔW`` metrics
need the caller to pass ``base=`` (the base weights) or ``deltas=`` to
:meth:`StabilityTracker.measure`.  torch is imported only when a function here
runs.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from losia_cl.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "StabilityConfig",
    "Spectrum",
    "StabilityTracker",
    "spectrum",
    "effective_rank",
    "stable_rank",
    "spectral_drift",
    "subspace_similarity",
    "merge_lora",
    "linear_weights",
    "MEASURES",
]

_FORMAT = "losia_cl.stability"
_VERSION = 1
_METHODS = ("auto", "exact", "randomized")
_DTYPES = ("float32", "float64")
_SOLVERS = ("gram", "svd")
_TAILS = ("power", "flat")
_EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class StabilityConfig:
    """How stability is measured.

    Attributes:
        k: number of top singular vectors compared (clamped to ``min(d_out, d_in)``), ≥ 1.
        method: ``"auto"`` (exact when ``min(d_out, d_in) ≤ exact_max_dim``),
            ``"exact"`` or ``"randomized"``.
        exact_max_dim: the ``auto`` threshold on ``min(d_out, d_in)``.
        spectrum_rank: randomized only: number ``h`` of leading singular values kept (≥ k).
        oversample: randomized only: extra random directions, ``q = h + oversample``.
        n_iter: randomized only: power (subspace) iterations.
        seed: randomized only: seed of the random test matrix (results are reproducible).
        dtype: computation dtype of the ``svd`` solver and the randomized SVD,
            ``"float32"`` or ``"float64"`` (the ``gram`` solver always uses float64).
        exact_solver: ``"gram"`` (eigendecomposition of the float64 Gram matrix of
            the smaller side, ``WᵀW`` or ``WWᵀ``; ~3x faster than an SVD) or ``"svd"``
            (``torch.linalg.svd`` / ``svdvals`` in ``dtype``).
        tail_model: randomized only: how the ``n − h`` uncomputed singular values
            are modelled, ``"power"`` (power law fitted to the computed head) or
            ``"flat"`` (all equal); both carry exactly the residual Frobenius energy.
    """

    k: int = 16
    method: str = "auto"
    exact_max_dim: int = 1024
    spectrum_rank: int = 128
    oversample: int = 16
    n_iter: int = 2
    seed: int = 0
    dtype: str = "float32"
    exact_solver: str = "gram"
    tail_model: str = "power"

    def __post_init__(self) -> None:
        def positive(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"StabilityConfig.{name} must be an int >= {minimum}, got {value!r}")

        positive("k")
        positive("exact_max_dim")
        positive("spectrum_rank")
        positive("oversample", 0)
        positive("n_iter", 0)
        if not isinstance(self.seed, int):
            raise ConfigError(f"StabilityConfig.seed must be an int, got {self.seed!r}")
        if self.method not in _METHODS:
            raise ConfigError(f"StabilityConfig.method must be one of {_METHODS}, got {self.method!r}")
        if self.exact_solver not in _SOLVERS:
            raise ConfigError(
                f"StabilityConfig.exact_solver must be one of {_SOLVERS}, got {self.exact_solver!r}"
            )
        if self.tail_model not in _TAILS:
            raise ConfigError(f"StabilityConfig.tail_model must be one of {_TAILS}, got {self.tail_model!r}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"StabilityConfig.dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.spectrum_rank < self.k:
            raise ConfigError(
                f"StabilityConfig.spectrum_rank ({self.spectrum_rank}) must be >= k ({self.k})"
            )


@dataclass
class Spectrum:
    """What is kept of one matrix's SVD.

    Attributes:
        u: ``d_out × k`` top left singular vectors (CPU, float32), or ``None``.
        v: ``d_in × k`` top right singular vectors (CPU, float32), or ``None``.
        sigma: leading singular values, descending (all ``n`` when ``exact``).
        fro2: ``‖W‖²_F``, computed directly (trace of the float64 Gram matrix, or
            float32 row sums added in float64).
        n: ``min(d_out, d_in)``, the full spectrum length.
        shape: ``(d_out, d_in)``.
        exact: whether ``sigma`` is the full exact spectrum.
        tol: singular values ``≤ tol`` count as zero.
        tail_model: ``"power"`` or ``"flat"``, how a truncated spectrum's tail is modelled.
    """

    u: Any
    v: Any
    sigma: np.ndarray
    fro2: float
    n: int
    shape: tuple[int, int]
    exact: bool
    tol: float
    tail_model: str = "power"

    def estimated_sigma(self) -> np.ndarray:
        """All ``n`` singular values: the computed ones, then (truncated spectra) the modelled tail.

        Tail model (module docstring): ``σ_i = c · (i/h)^(−α)`` for ``i = h+1..n``
        with ``α`` the log-log slope of the computed ``σ_{h/2..h}`` clamped to
        ``[0, 3]`` (``α = 0`` with ``tail_model="flat"``), and ``c`` set so that
        the tail energy is exactly ``E = ‖W‖²_F − Σ_{i≤h} σ_i²``; if that tail
        would start above ``1.25·σ_h`` the flat tail is used.  A tail energy
        ``E ≤ ‖W‖²_F · max(d_out, d_in) · eps₃₂`` (rounding noise of the head,
        e.g. for a low-rank ``ΔW``) means no tail.  Values ``≤ tol`` are 0.
        """
        head = np.asarray(self.sigma, dtype=np.float64)
        n_tail = 0 if self.exact else self.n - len(head)
        if n_tail > 0:
            energy = self.fro2 - float(np.sum(head**2))
            if energy <= self.fro2 * max(self.shape) * _EPS32:
                # below the rounding error of the head's float32 singular values: no tail
                return np.where(head > self.tol, head, 0.0)
            shape = np.ones(n_tail)
            h = len(head)
            positive = head > self.tol
            if self.tail_model == "power" and h >= 8 and positive[h // 2 :].all():
                idx = np.arange(h // 2, h) + 1.0
                slope = np.polyfit(np.log(idx), np.log(head[h // 2 :]), 1)[0]
                alpha = float(np.clip(-slope, 0.0, 3.0))
                shape = (np.arange(h + 1, self.n + 1) / h) ** (-alpha)
            tail = shape * math.sqrt(energy / float(np.sum(shape**2)))
            if h and tail[0] > 1.25 * head[-1]:
                tail = np.full(n_tail, math.sqrt(energy / n_tail))
            head = np.concatenate([head, tail])
        return np.where(head > self.tol, head, 0.0)


def _torch() -> Any:
    import torch

    return torch


def _as_matrix(w: Any, what: str, dtype: str) -> torch.Tensor:
    torch = _torch()
    t = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w))
    if t.ndim != 2 or 0 in t.shape:
        raise DataError(f"{what}: expected a non-empty 2-D matrix, got shape {tuple(t.shape)}")
    return t.detach().to(getattr(torch, dtype))


def _tolerance(sigma_max: float, shape: tuple[int, int]) -> float:
    # float32 rounding level of the stored weights; well above the float64 Gram solver's error
    return float(sigma_max * max(shape) * _EPS32)


def spectrum(
    w: Any, config: StabilityConfig | None = None, vectors: bool = True, what: str = "spectrum"
) -> Spectrum:
    """SVD summary of matrix ``w`` (tensor or array) under ``config`` (see :class:`StabilityConfig`).

    With ``vectors=False`` and an exact method only singular values are computed.
    ``what`` names the matrix in error messages.
    """
    cfg = config or StabilityConfig()
    torch = _torch()
    mat = _as_matrix(w, what, cfg.dtype)
    shape = (int(mat.shape[0]), int(mat.shape[1]))
    n = min(shape)
    k = min(cfg.k, n)
    exact = cfg.method == "exact" or (cfg.method == "auto" and n <= cfg.exact_max_dim)
    if not exact and cfg.spectrum_rank + cfg.oversample >= n:
        exact = True  # the randomized sketch would be as large as the matrix
    u = v = None
    if exact and cfg.exact_solver == "gram":
        # eigendecomposition of the float64 Gram matrix of the smaller side
        wd = mat.double()
        tall = shape[0] >= shape[1]
        gram = wd.T @ wd if tall else wd @ wd.T  # n × n
        fro2 = float(torch.trace(gram))
    else:
        # row sums of squares in the computation dtype (relative error ~1e-6 in float32), total in float64
        fro2 = float(torch.einsum("ij,ij->i", mat, mat).double().sum())
    # a non-finite entry makes ‖W‖²_F non-finite (and must not reach LAPACK)
    if not math.isfinite(fro2):
        raise DataError(f"{what}: matrix has non-finite entries")
    if exact and cfg.exact_solver == "gram":
        if vectors:
            evals, evecs = torch.linalg.eigh(gram)
            s = evals.flip(0).clamp_min(0).sqrt()
            small_side = evecs[:, -k:].flip(1)  # top-k eigenvectors, descending
            other = (wd @ small_side if tall else wd.T @ small_side) / s[:k].clamp_min(1e-300)
            other = torch.linalg.qr(other).Q  # re-orthonormalize (also handles σ_k = 0)
            u, v = (other, small_side) if tall else (small_side, other)
        else:
            s = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0).sqrt()
    elif exact:
        if vectors:
            uu, s, vh = torch.linalg.svd(mat, full_matrices=False)
            u, v = uu[:, :k], vh[:k].T
        else:
            s = torch.linalg.svdvals(mat)
    else:
        q = min(cfg.spectrum_rank + cfg.oversample, n)
        devices = [mat.device] if mat.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.seed)
            uu, s, vv = torch.svd_lowrank(mat, q=q, niter=cfg.n_iter)
        s = s[: cfg.spectrum_rank]
        u, v = uu[:, :k], vv[:, :k]
    sigma = s.detach().cpu().double().numpy()
    sigma = np.maximum(sigma, 0.0)
    if vectors:
        u = u.detach().cpu().float().contiguous()
        v = v.detach().cpu().float().contiguous()
    else:
        u = v = None
    tol = _tolerance(float(sigma[0]) if sigma.size else 0.0, shape)
    return Spectrum(
        u=u, v=v, sigma=sigma, fro2=fro2, n=n, shape=shape, exact=exact, tol=tol, tail_model=cfg.tail_model
    )


def effective_rank(spec: Spectrum | Iterable[float]) -> float:
    """Effective rank ``exp(H(p))``, ``p_i = σ_i / ‖σ‖₁`` (Roy & Vetterli 2007); 0 for a zero matrix.

    Accepts a :class:`Spectrum` (a truncated one with its modelled tail, see
    :meth:`Spectrum.estimated_sigma`) or the full list of singular values
    (values ≤ 0 are ignored).
    """
    if isinstance(spec, Spectrum):
        sigma = spec.estimated_sigma()
    else:
        sigma = np.asarray(list(spec), dtype=np.float64)
    sigma = sigma[sigma > 0]
    total = float(np.sum(sigma))
    if total <= 0:
        return 0.0
    p = sigma / total
    return float(math.exp(-float(np.sum(p * np.log(p)))))


def stable_rank(spec: Spectrum) -> float:
    """Stable rank ``‖W‖²_F / σ_1²``; 0 for a zero matrix."""
    if spec.sigma.size == 0 or spec.sigma[0] <= spec.tol:
        return 0.0
    return float(spec.fro2 / spec.sigma[0] ** 2)


def spectral_drift(spec: Spectrum, reference: Spectrum) -> float | None:
    """``‖σ(W) − σ(W_ref)‖₂ / ‖σ(W_ref)‖₂`` with ``‖σ(W_ref)‖₂ = ‖W_ref‖_F`` (exact).

    Truncated spectra (length ``h`` of ``n``): the computed heads are compared
    value by value and the two tails only through their energies,
    ``(sqrt(E) − sqrt(E_ref))²`` — the flat-tail value, a lower bound of the true
    tail term (reverse triangle inequality).  ``None`` when the reference matrix
    is zero.
    """
    if reference.fro2 <= 0:
        return None
    if spec.n != reference.n:
        raise DataError(f"spectral_drift: spectra of lengths {spec.n} and {reference.n} differ")
    h = min(len(spec.sigma), len(reference.sigma))
    a, b = spec.sigma[:h], reference.sigma[:h]
    total = float(np.sum((a - b) ** 2))
    if h < spec.n:
        tail_a = max(spec.fro2 - float(np.sum(a**2)), 0.0)
        tail_b = max(reference.fro2 - float(np.sum(b**2)), 0.0)
        total += (math.sqrt(tail_a) - math.sqrt(tail_b)) ** 2
    return float(math.sqrt(total / reference.fro2))


def subspace_similarity(a: Any, b: Any) -> float:
    """``‖AᵀB‖²_F / k`` for orthonormal ``A``, ``B`` of ``k`` columns: the mean cos² of the principal angles."""
    torch = _torch()
    ta, tb = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if ta.shape != tb.shape:
        raise DataError(f"subspace_similarity: bases of shapes {tuple(ta.shape)} and {tuple(tb.shape)} differ")
    return float(torch.sum((ta.T @ tb) ** 2) / ta.shape[1])


def merge_lora(
    base: Mapping[str, Any], lora_a: Mapping[str, Any], lora_b: Mapping[str, Any], scaling: float = 1.0
) -> dict[str, Any]:
    """Merged LoRA weights ``{name: W₀ + scaling · B @ A}`` (``A``: ``r × d_in``, ``B``: ``d_out × r``).

    Names present in ``base`` but not in the LoRA dicts are returned unchanged.
    """
    torch = _torch()
    merged: dict[str, Any] = {}
    for name, w in base.items():
        w_t = torch.as_tensor(w)
        if name in lora_a or name in lora_b:
            if name not in lora_a or name not in lora_b:
                raise DataError(f"merge_lora: {name!r} has only one of the A and B factors")
            a, b = torch.as_tensor(lora_a[name]), torch.as_tensor(lora_b[name])
            if b.shape[0] != w_t.shape[0] or a.shape[1] != w_t.shape[1] or a.shape[0] != b.shape[1]:
                raise DataError(
                    f"merge_lora: {name!r}: W {tuple(w_t.shape)}, B {tuple(b.shape)}, A {tuple(a.shape)} do not compose"
                )
            merged[name] = w_t + scaling * (b.to(w_t.dtype) @ a.to(w_t.dtype))
        else:
            merged[name] = w_t
    return merged


def linear_weights(module: Any, include: Iterable[str] | None = None) -> dict[str, Any]:
    """``{qualified name: weight}`` (detached) of every sub-module with a 2-D ``weight``.

    ``include`` keeps only names containing one of the given substrings
    (e.g. ``("q_proj", "v_proj")``).  Works on any ``torch.nn.Module``.
    """
    keep = None if include is None else tuple(include)
    out: dict[str, Any] = {}
    for name, sub in module.named_modules():
        weight = getattr(sub, "weight", None)
        if weight is None or getattr(weight, "ndim", 0) != 2:
            continue
        if keep is None or any(s in name for s in keep):
            out[name] = weight.detach()
    return out


# ---- serialization helpers


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float array as ``{"dtype", "shape", "data"}`` with little-endian bytes in base64."""
    arr = np.ascontiguousarray(a, dtype="<f4" if a.dtype == np.float32 else "<f8")
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def _decode_array(d: Mapping[str, Any], what: str) -> np.ndarray:
    try:
        dtype = np.dtype(d["dtype"])
        if dtype.str not in ("<f4", "<f8"):
            raise ValueError(f"dtype {dtype.str}")
        arr = np.frombuffer(base64.b64decode(d["data"].encode("ascii"), validate=True), dtype=dtype)
        return arr.reshape([int(x) for x in d["shape"]]).copy()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"stability state: {what} is malformed ({exc})") from None


def _spectrum_to_dict(spec: Spectrum) -> dict[str, Any]:
    return {
        "u": _encode_array(spec.u.numpy()),
        "v": _encode_array(spec.v.numpy()),
        "sigma": _encode_array(spec.sigma),
        "fro2": spec.fro2,
        "n": spec.n,
        "shape": list(spec.shape),
        "exact": spec.exact,
        "tol": spec.tol,
        "tail_model": spec.tail_model,
    }


def _spectrum_from_dict(d: Mapping[str, Any], what: str) -> Spectrum:
    torch = _torch()
    try:
        spec = Spectrum(
            u=torch.from_numpy(_decode_array(d["u"], what + " u").astype(np.float32)),
            v=torch.from_numpy(_decode_array(d["v"], what + " v").astype(np.float32)),
            sigma=_decode_array(d["sigma"], what + " sigma").astype(np.float64),
            fro2=float(d["fro2"]),
            n=int(d["n"]),
            shape=(int(d["shape"][0]), int(d["shape"][1])),
            exact=bool(d["exact"]),
            tol=float(d["tol"]),
            tail_model=str(d["tail_model"]),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"stability state: {what} is malformed ({exc})") from None
    if tuple(spec.u.shape[:1]) != spec.shape[:1] or tuple(spec.v.shape[:1]) != spec.shape[1:]:
        raise DataError(f"stability state: {what} vectors do not match shape {spec.shape}")
    return spec


# ---- tracker

#: Per-matrix measurement keys, in report order.
MEASURES = (
    "subspace_left_base",
    "subspace_right_base",
    "subspace_left_prev",
    "subspace_right_prev",
    "spectral_drift_base",
    "spectral_drift_prev",
    "effective_rank",
    "stable_rank",
    "delta_effective_rank",
    "delta_stable_rank",
    "delta_rel_norm",
)


@dataclass
class _Stage:
    name: str
    matrices: dict[str, dict[str, Any]] = field(default_factory=dict)


class StabilityTracker:
    """Snapshots the base weights once, then measures every stage against the base and the previous stage.

    ::

        tracker = StabilityTracker(StabilityConfig(k=16))
        tracker.set_base(base_weights)                        # {name: W₀}
        tracker.measure("task-1", weights, base=base_weights)  # after each task
        tracker.summary()                                      # JSON-able
        state = tracker.to_dict(); tracker = StabilityTracker.from_dict(state)

    ``measure`` returns ``{name: {measure: value}}`` with the keys of
    :data:`MEASURES` plus ``approximate`` (randomized SVD used) and ``k``.
    ``*_prev`` compare with the previous measured stage (the base for the
    first).  ``delta_*`` (``ΔW = W_t − W₀``: effective rank, stable rank,
    ``‖ΔW‖_F / ‖W₀‖_F``) are ``None`` unless ``deltas`` (``{name: ΔW}``) or
    ``base`` (``{name: W₀}``) is passed.  For LoRA pass merged weights
    (:func:`merge_lora`).  Weights may live on any device; snapshots are kept on
    the CPU.
    """

    def __init__(
        self,
        config: StabilityConfig | None = None,
        base: Mapping[str, Any] | None = None,
        layers: Mapping[str, int] | None = None,
    ) -> None:
        self.config = config or StabilityConfig()
        self._base: dict[str, Spectrum] = {}
        self._layers: dict[str, int] = {}
        self._base_ranks: dict[str, dict[str, float]] = {}
        self._prev: dict[str, Spectrum] = {}
        self._stages: list[_Stage] = []
        if base is not None:
            self.set_base(base, layers)

    @property
    def matrix_names(self) -> list[str]:
        """Names of the matrices in the base snapshot."""
        return list(self._base)

    @property
    def stages(self) -> list[str]:
        """Names of the measured stages, in order."""
        return [s.name for s in self._stages]

    def set_base(self, base: Mapping[str, Any], layers: Mapping[str, int] | None = None) -> None:
        """Snapshot the base weights ``{name: W₀}`` (adds to / replaces earlier base snapshots by name).

        ``layers`` ``{name: layer index}`` groups the matrices in the summary's ``per_layer``
        (matrices without a layer are left out of it).
        """
        if self._stages:
            raise ConfigError("StabilityTracker.set_base: stages were already measured against the old base")
        for name, layer in (layers or {}).items():
            if name not in base:
                raise ConfigError(f"StabilityTracker.set_base: layer given for {name!r}, which has no base weight")
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
                raise ConfigError(f"StabilityTracker.set_base: layer of {name!r} must be an int, got {layer!r}")
            self._layers[name] = int(layer)
        for name, w in base.items():
            spec = spectrum(w, self.config, what=f"base {name}")
            self._base[name] = spec
            self._prev[name] = spec
            self._base_ranks[name] = {"effective_rank": effective_rank(spec), "stable_rank": stable_rank(spec)}
        logger.debug("stability base snapshot of %d matrices", len(base))

    def measure(
        self,
        stage: Any,
        weights: Mapping[str, Any],
        base: Mapping[str, Any] | None = None,
        deltas: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Measure stage ``stage`` from ``weights`` ``{name: W_t}`` and record it; returns the per-matrix results."""
        name_s = str(stage)
        if name_s in self.stages:
            raise ConfigError(f"StabilityTracker.measure: stage {name_s!r} was already measured")
        unknown = [n for n in weights if n not in self._base]
        if unknown:
            raise ConfigError(f"StabilityTracker.measure: no base snapshot for {unknown[:5]}; call set_base first")
        results: dict[str, dict[str, Any]] = {}
        new_prev: dict[str, Spectrum] = {}
        for name, w in weights.items():
            spec0, prev = self._base[name], self._prev[name]
            mat = _as_matrix(w, name, self.config.dtype)
            if tuple(mat.shape) != spec0.shape:
                raise DataError(f"{name}: shape {tuple(mat.shape)} differs from the base {spec0.shape}")
            spec = spectrum(mat, self.config, what=name)
            row: dict[str, Any] = {
                "k": int(spec.u.shape[1]),
                "approximate": not spec.exact,
                "subspace_left_base": subspace_similarity(spec0.u, spec.u),
                "subspace_right_base": subspace_similarity(spec0.v, spec.v),
                "subspace_left_prev": subspace_similarity(prev.u, spec.u),
                "subspace_right_prev": subspace_similarity(prev.v, spec.v),
                "spectral_drift_base": spectral_drift(spec, spec0),
                "spectral_drift_prev": spectral_drift(spec, prev),
                "effective_rank": effective_rank(spec),
                "stable_rank": stable_rank(spec),
                "delta_effective_rank": None,
                "delta_stable_rank": None,
                "delta_rel_norm": None,
            }
            delta = None
            if deltas is not None and name in deltas:
                delta = _as_matrix(deltas[name], f"{name} delta", self.config.dtype)
            elif base is not None and name in base:
                delta = mat - _as_matrix(base[name], f"{name} base", self.config.dtype).to(mat.device)
            if delta is not None:
                if tuple(delta.shape) != spec.shape:
                    raise DataError(f"{name}: delta shape {tuple(delta.shape)} differs from {spec.shape}")
                dspec = spectrum(delta, self.config, vectors=False, what=f"{name} delta")
                row["delta_effective_rank"] = effective_rank(dspec)
                row["delta_stable_rank"] = stable_rank(dspec)
                row["delta_rel_norm"] = (
                    math.sqrt(dspec.fro2 / spec0.fro2) if spec0.fro2 > 0 else None
                )
                del delta
            results[name] = row
            new_prev[name] = spec
        self._prev.update(new_prev)
        self._stages.append(_Stage(name=name_s, matrices=results))
        return results

    def summary(self, per_matrix: bool = True) -> dict[str, Any]:
        """JSON-able summary: config, base ranks, and per stage the mean of every measure over matrices.

        ``stages[i]["mean"][key]`` averages the defined values of ``key`` over
        the stage's matrices; ``stages[i]["per_layer"][layer]`` does the same
        per layer index (given to :meth:`set_base`); ``stages[i]["matrices"]`` holds every matrix's row
        (left out with ``per_matrix=False``).
        """
        stages = []
        for st in self._stages:
            entry: dict[str, Any] = {
                "stage": st.name,
                "mean": _mean_rows(st.matrices.values()),
                "approximate_matrices": sum(1 for r in st.matrices.values() if r["approximate"]),
            }
            layers: dict[int, list[dict[str, Any]]] = {}
            for name, row in st.matrices.items():
                if name in self._layers:
                    layers.setdefault(self._layers[name], []).append(row)
            entry["per_layer"] = {str(layer): _mean_rows(rows) for layer, rows in sorted(layers.items())}
            if per_matrix:
                entry["matrices"] = {n: dict(r) for n, r in st.matrices.items()}
            stages.append(entry)
        return {
            "config": asdict(self.config),
            "num_matrices": len(self._base),
            "base": {
                "mean": _mean_rows(self._base_ranks.values(), ("effective_rank", "stable_rank")),
                **({"matrices": {n: dict(r) for n, r in self._base_ranks.items()}} if per_matrix else {}),
            },
            "stages": stages,
        }

    def to_dict(self) -> dict[str, Any]:
        """The full state as a JSON-able dict (bases as base64 float arrays) for checkpoints."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "config": asdict(self.config),
            "base": {n: _spectrum_to_dict(s) for n, s in self._base.items()},
            "base_ranks": {n: dict(r) for n, r in self._base_ranks.items()},
            "layers": dict(self._layers),
            "prev": {n: _spectrum_to_dict(s) for n, s in self._prev.items() if s is not self._base[n]},
            "stages": [{"name": s.name, "matrices": s.matrices} for s in self._stages],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> StabilityTracker:
        """Rebuild a tracker from :meth:`to_dict` output; malformed state raises DataError."""
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise DataError(f"stability state: not a {_FORMAT!r} dict")
        if state.get("version") != _VERSION:
            raise DataError(f"stability state: version {state.get('version')!r}, expected {_VERSION}")
        try:
            tracker = cls(StabilityConfig(**state["config"]))
            for name, d in state["base"].items():
                tracker._base[name] = _spectrum_from_dict(d, f"base {name!r}")
                tracker._prev[name] = tracker._base[name]
                tracker._base_ranks[name] = {k: float(v) for k, v in state["base_ranks"][name].items()}
            for name, layer in state.get("layers", {}).items():
                if name not in tracker._base:
                    raise DataError(f"stability state: layer of unknown matrix {name!r}")
                tracker._layers[name] = int(layer)
            for name, d in state["prev"].items():
                if name not in tracker._base:
                    raise DataError(f"stability state: previous-stage snapshot of unknown matrix {name!r}")
                tracker._prev[name] = _spectrum_from_dict(d, f"previous {name!r}")
            for st in state["stages"]:
                tracker._stages.append(_Stage(name=str(st["name"]), matrices=dict(st["matrices"])))
        except DataError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise DataError(f"stability state: missing or malformed field ({type(exc).__name__}: {exc})") from None
        return tracker


def _mean_rows(rows: Iterable[Mapping[str, Any]], keys: Iterable[str] = MEASURES) -> dict[str, float | None]:
    rows = list(rows)
    out: dict[str, float | None] = {}
    for key in keys:
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(math.fsum(vals) / len(vals)) if vals else None
    return out
