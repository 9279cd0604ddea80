"""GaLore (Zhao et al., ICML 2024) through the authors' ``galore-torch`` package: Adam on low-rank gradient projections.

Every target matrix (the linear layers of the decoder blocks, as LoSiA's and LoRA's) trains at full rank,
but Adam sees its gradient projected onto ``rank`` singular vectors of the gradient itself, recomputed every
``update_proj_gap`` steps; the moments live in that projected space and the normalized update is projected
back.  The optimizer is ``galore_torch``'s ``AdamW`` (``pip install 'losia-cl[galore]'``), used as it is;
this module only chooses the parameter groups and makes its state plain data (see :func:`galore_adamw_class`).

The package's ``__init__`` also imports its 8-bit optimizer and with it ``bitsandbytes`` (seconds of import
time and, on CPUs with AVX-512 BF16, an attempt to fetch optional kernels from a model hub);
:func:`load_galore` imports the two modules this method uses (``galore_torch.adamw``,
``galore_torch.galore_projector``, which need only torch and transformers) without running that ``__init__``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from losia_cl.errors import ConfigError
from losia_cl.fields import documented
from losia_cl.methods.base import TaskContext, is_number, register_method, require
from losia_cl.methods.dense import DenseMethodDefaults
from losia_cl.methods.full import check_envelope
from losia_cl.methods.schedule import envelope_scheduler
from losia_cl.optim.targets import Target, find_targets

logger = logging.getLogger(__name__)

#: the distribution and the optional extra that install it
PACKAGE = "galore-torch"
EXTRA = "galore"
MISSING_PACKAGE = (f"method galore needs the {PACKAGE} package, which is not installed: "
                   f"pip install 'losia-cl[{EXTRA}]'")
#: galore_torch's projection types ("std": project onto the gradient's smaller side)
PROJ_TYPES = ("std", "reverse_std", "left", "right", "full")
DENSE_PARAMS = ("frozen", "adamw")
#: key under which a projector's matrix (or pair of matrices, proj_type 'full') is saved in a state dict
SAVED_PROJECTOR = "projector_matrix"
_MODULE = "galore_torch"


def galore_installed() -> bool:
    """Whether ``galore_torch`` can be imported (found on the path; nothing is imported)."""
    try:
        return importlib.util.find_spec(_MODULE) is not None
    except (ImportError, ValueError):  # a module without a spec in sys.modules
        return False


def load_galore() -> tuple[type, type]:
    """``(AdamW, GaLoreProjector)`` of ``galore_torch``; :class:`ConfigError` naming the extra when it is missing.

    The package's ``__init__`` is not run (it imports ``bitsandbytes`` for the 8-bit optimizer): a module
    object for the package is put in ``sys.modules`` while its two submodules load, then taken out, so a
    later ``import galore_torch`` still runs the real ``__init__`` (reusing the loaded submodules).
    """
    adamw_name, projector_name = f"{_MODULE}.adamw", f"{_MODULE}.galore_projector"
    try:
        if adamw_name not in sys.modules and _MODULE not in sys.modules:
            spec = importlib.util.find_spec(_MODULE)
            if spec is None or spec.submodule_search_locations is None:
                raise ConfigError(MISSING_PACKAGE)
            sys.modules[_MODULE] = importlib.util.module_from_spec(spec)  # its __init__ is not executed
            try:
                importlib.import_module(adamw_name)
            finally:
                del sys.modules[_MODULE]
        adamw = importlib.import_module(adamw_name)
        projector = importlib.import_module(projector_name)
    except ImportError as error:
        raise ConfigError(f"{MISSING_PACKAGE} ({type(error).__name__}: {error})") from error
    return adamw.AdamW, projector.GaLoreProjector


# ---------------------------------------------------------------------------------------------- memory


def projected_shapes(shape: tuple[int, int], rank: int, proj_type: str = "std") -> tuple[tuple[int, int], list]:
    """``(moment shape, [projector matrix shapes])`` galore_torch 1.0 keeps for an ``(m, n)`` gradient at ``rank``.

    With ``r = min(rank, m, n)`` (the SVD has no more singular vectors): 'std' projects onto the smaller
    side (``m >= n``: moments ``m x r``, projector ``r x n``; else moments ``r x n``, projector ``m x r``),
    'reverse_std' onto the larger; 'right' gives moments ``m x r`` and projector ``r x n``; 'left'
    ``r x n`` and ``m x r``; 'full' moments ``r x r`` and projectors ``m x r`` and ``r x n``.
    """
    m, n = shape
    r = min(rank, m, n)
    right, left = ((m, r), [(r, n)]), ((r, n), [(m, r)])
    if proj_type == "std":
        return right if m >= n else left
    if proj_type == "reverse_std":
        return left if m >= n else right
    if proj_type == "full":
        return (r, r), [(m, r), (r, n)]
    return {"right": right, "left": left}[proj_type]


def state_entries(shape: tuple[int, int], rank: int, proj_type: str = "std") -> int:
    """Entries galore_torch 1.0 keeps for one ``(m, n)`` gradient at ``rank``: two Adam moments plus the projector.

    'std': ``r (2 max(m, n) + min(m, n))`` with ``r = min(rank, m, n)`` (see :func:`projected_shapes`).
    """
    (a, b), projectors = projected_shapes(shape, rank, proj_type)
    return 2 * a * b + sum(x * y for x, y in projectors)


def losia_moment_entries(targets: Sequence[Target]) -> int:
    """Entries of LoSiA's two Adam moments over ``targets``' subnets: ``2 floor(p d_out) floor(p d_in)`` each."""
    return sum(2 * t.subnet_shape[0] * t.subnet_shape[1] for t in targets)


def matched_rank(model: nn.Module, rank_factor: float, proj_type: str = "std") -> int:
    """The GaLore rank whose optimizer state is closest to LoSiA's Adam moments at ``rank_factor``.

    Minimizes ``|Σ state_entries(W, r) - Σ 2 floor(p d_out) floor(p d_in)|`` over the target matrices
    (ties: the smaller rank), at least 1.  The state grows with ``r``, so a bisection finds it.
    """
    targets = find_targets(model, rank_factor)
    budget = losia_moment_entries(targets)
    shapes = [tuple(t.weight.shape) for t in targets]

    def total(r: int) -> int:
        return sum(state_entries(s, r, proj_type) for s in shapes)

    low, high = 1, max(min(s) for s in shapes)
    while low < high:  # the smallest r with total(r) >= budget (or the largest useful r)
        mid = (low + high) // 2
        if total(mid) >= budget:
            high = mid
        else:
            low = mid + 1
    if low > 1 and budget - total(low - 1) <= total(low) - budget:
        return low - 1
    return low


# ----------------------------------------------------------------------------------- checkpoint adapter


def plain_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` with each ``GaLoreProjector`` object replaced by its matrix (plain tensors).

    galore_torch keeps a projector object in each projected parameter's state, which
    ``torch.load(weights_only=True)`` cannot read back.  The projector's only state is its current
    matrix (its rank, gap, scale and type are the group's): that matrix is saved under
    ``"projector_matrix"`` (a tensor; a list of two for proj_type 'full').  The live state is untouched.
    """
    for index, entry in list(state_dict["state"].items()):
        if "projector" not in entry:
            continue
        matrix = entry["projector"].ortho_matrix
        entry = {k: v for k, v in entry.items() if k != "projector"}  # a copy: the live state stays as it is
        if matrix is not None:
            entry[SAVED_PROJECTOR] = list(matrix) if isinstance(matrix, (list, tuple)) else matrix
        state_dict["state"][index] = entry
    return state_dict


def restore_projectors(optimizer: torch.optim.Optimizer, projector_class: type) -> None:
    """Rebuild each ``GaLoreProjector`` of a freshly loaded ``optimizer`` from its saved matrix.

    The matrix was already cast to the parameter's dtype and device by ``load_state_dict`` (it has
    the gradient's dtype, as galore_torch computes it), so the next step projects exactly as the
    saved optimizer would have.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param)
            if not state or SAVED_PROJECTOR not in state:
                continue
            matrix = state.pop(SAVED_PROJECTOR)
            projector = projector_class(group["rank"], update_proj_gap=group["update_proj_gap"], scale=group["scale"],
                                        proj_type=group["proj_type"])
            projector.ortho_matrix = list(matrix) if isinstance(matrix, (list, tuple)) else matrix
            state["projector"] = projector


def check_state_shapes(optimizer: torch.optim.Optimizer) -> None:
    """Raise ``ValueError`` naming the first loaded state tensor whose shape is not what galore_torch keeps.

    A projected parameter's moments and projector have the shapes of :func:`projected_shapes`; any
    other parameter's moments have its own shape.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "rank" in group:
                moments, projectors = projected_shapes(tuple(param.shape), group["rank"], group["proj_type"])
            else:
                moments, projectors = tuple(param.shape), []
            expected = {"exp_avg": moments, "exp_avg_sq": moments}
            for key, value in state.items():
                if key in expected and tuple(value.shape) != expected[key]:
                    raise ValueError(f"optimizer state {key!r} has shape {tuple(value.shape)}, "
                                     f"GaLore expects {expected[key]} for a {tuple(param.shape)} parameter")
            if "projector" in state:
                matrix = state["projector"].ortho_matrix
                shapes = [tuple(x.shape) for x in (matrix if isinstance(matrix, list) else [matrix])]
                if shapes != projectors:
                    raise ValueError(f"optimizer state 'projector_matrix' has shape(s) {shapes}, GaLore expects "
                                     f"{projectors} for a {tuple(param.shape)} parameter")


@functools.cache
def galore_adamw_class() -> type:
    """galore_torch's ``AdamW`` with a plain-data state dict (:func:`plain_state_dict`), rebuilt and checked on load."""
    adamw, projector_class = load_galore()

    class GaLoreAdamW(adamw):  # type: ignore[misc, valid-type]
        """galore_torch's AdamW, unchanged, whose ``state_dict`` holds tensors and plain data only."""

        def state_dict(self) -> dict[str, Any]:
            return plain_state_dict(super().state_dict())

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            super().load_state_dict(state_dict)
            restore_projectors(self, projector_class)
            check_state_shapes(self)

    return GaLoreAdamW


def build_galore_adamw(param_groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """galore_torch's ``AdamW`` on ``param_groups`` (a group with ``rank`` is projected), with plain state dicts."""
    return galore_adamw_class()(param_groups, lr=lr, eps=1e-6, weight_decay=0.0, no_deprecation_warning=True)


# ------------------------------------------------------------------------------------------------- method


@register_method("galore")
@dataclass
class GaLoreMethod(DenseMethodDefaults):
    """GaLore per task: a fresh galore_torch AdamW (new projectors and moments); pip install 'losia-cl[galore]'."""

    lr: float = documented("Peak learning rate (> 0) of GaLore's AdamW (the update is also multiplied by scale).",
                           1e-3)
    rank: int | None = documented(
        "Projection rank r >= 1; null: the rank whose optimizer state (moments and projector) is closest to "
        "LoSiA's Adam moments at rank_factor.", None,
    )
    update_proj_gap: int = documented(
        "Steps >= 1 between projector updates (an SVD of every target matrix's gradient); the first is at a "
        "task's first step.", 200,
    )
    scale: float = documented("GaLore's alpha (> 0): the projected-back update is multiplied by it.", 0.25)
    proj_type: str = documented(
        "galore_torch's projection: 'std' (onto the gradient's smaller side), 'reverse_std', 'left', 'right' "
        "(of the weight as stored) or 'full' (both sides).", "std",
    )
    rank_factor: float = documented(
        "LoSiA's rank factor p in (0, 1] whose optimizer-state size the default rank matches (unused with rank).",
        1 / 8,
    )
    dense_params: str = documented(
        "Parameters outside the target matrices (embeddings, norms, output head): 'frozen' (as LoSiA's default) "
        "or 'adamw' (trained densely by the same optimizer, as GaLore's own training code).", "frozen",
    )
    warmup_ratio: float = documented("Fraction in [0, 1) of the task's steps spent in the linear warm-up.", 0.0)
    min_lr_ratio: float = documented("In [0, 1]: the cosine decays from lr to min_lr_ratio*lr at the task's end.", 0.1)

    def __post_init__(self) -> None:
        check_envelope(self.name, self.lr, self.warmup_ratio, self.min_lr_ratio)
        require(self.rank is None or (isinstance(self.rank, int) and not isinstance(self.rank, bool)
                                      and self.rank >= 1), self.name, "rank", self.rank, "null or an integer >= 1")
        require(isinstance(self.update_proj_gap, int) and not isinstance(self.update_proj_gap, bool)
                and self.update_proj_gap >= 1, self.name, "update_proj_gap", self.update_proj_gap, "an integer >= 1")
        require(is_number(self.scale) and math.isfinite(self.scale) and self.scale > 0, self.name, "scale", self.scale,
                "a number > 0")
        require(self.proj_type in PROJ_TYPES, self.name, "proj_type", self.proj_type, f"one of {', '.join(PROJ_TYPES)}")
        require(is_number(self.rank_factor) and 0 < self.rank_factor <= 1, self.name, "rank_factor",
                self.rank_factor, "in (0, 1]")
        require(self.dense_params in DENSE_PARAMS, self.name, "dense_params", self.dense_params,
                f"one of {', '.join(DENSE_PARAMS)}")
        if not galore_installed():  # before any model is loaded
            raise ConfigError(MISSING_PACKAGE)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the method cannot be built here (its package is missing), or None."""
        return None if galore_installed() else MISSING_PACKAGE

    def resolved_rank(self, model: nn.Module) -> int:
        return self.rank if self.rank is not None else matched_rank(model, self.rank_factor, self.proj_type)

    def _targets(self, model: nn.Module) -> list[Target]:
        return find_targets(model, self.rank_factor)

    def prepare(self, model: nn.Module, ctx: TaskContext) -> nn.Module:
        """Target weights and biases train; the other parameters train only with ``dense_params='adamw'``."""
        targets = self._targets(model)
        for p in model.parameters():
            p.requires_grad_(self.dense_params == "adamw")
        for t in targets:
            for p in (t.weight, t.bias):
                if p is not None:
                    p.requires_grad_(True)
        return model

    def build_optimizer(self, model: nn.Module, ctx: TaskContext):
        """A fresh galore_torch AdamW: one projected group (the target weights), one plain group (the rest)."""
        rank = self.resolved_rank(model)
        weights = [t.weight for t in self._targets(model)]
        projected = {id(w) for w in weights}
        plain = [p for p in model.parameters() if p.requires_grad and id(p) not in projected]
        groups: list[dict[str, Any]] = [{"params": weights, "rank": rank, "update_proj_gap": self.update_proj_gap,
                                         "scale": float(self.scale), "proj_type": self.proj_type}]
        if plain:
            groups.append({"params": plain})
        optimizer = build_galore_adamw(groups, self.lr)
        logger.info("%s task %d/%d: rank %d on %d matrices, projector every %d steps, %d other parameters trained",
                    self.name, ctx.task_index + 1, ctx.num_tasks, rank, len(weights), self.update_proj_gap,
                    sum(p.numel() for p in plain))
        scheduler = envelope_scheduler(optimizer, ctx.num_training_steps, self.warmup_ratio, self.min_lr_ratio)
        return optimizer, scheduler

    def after_task(self, model: nn.Module, optimizer, ctx: TaskContext) -> nn.Module:
        return model

    def describe(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The rank used, the projected matrices, the steps taken and the projector updates (SVDs) per matrix."""
        group = next(g for g in optimizer.param_groups if "rank" in g)
        steps = max((int(optimizer.state[p].get("step", 0)) for p in group["params"] if p in optimizer.state),
                    default=0)
        return {
            "rank": group["rank"], "update_proj_gap": group["update_proj_gap"],
            "projected_matrices": len(group["params"]), "steps": steps,
            "projector_updates": -(-steps // group["update_proj_gap"]),
        }
