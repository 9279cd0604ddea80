"""The LoSiA optimizer: AdamW on one re-localized sub-matrix W[R, C] per target matrix.

Parameter groups carrying ``losia=True`` hold one target matrix (its weight, and its bias if it
has one) and the keys ``slot`` (time slot), ``name``, ``num_rows``, ``num_cols`` and
``transposed`` (True for GPT-2's ``Conv1D``, whose weight is stored as (d_in, d_out)); other
groups are trained densely with AdamW.  :func:`losia_cl.optim.build.build_losia` builds the
groups from a model.  Every group's ``lr`` is read at every step, so any learning-rate
scheduler drives LoSiA as it drives AdamW; a re-localized matrix runs at
``group["lr"] * min(1, (s - r + 1) / T)`` (its re-warm ramp), or, with ``envelope='official'``, at
``group["lr"]`` set per group by :func:`losia_cl.optim.lr.losia_scheduler` (the official schedule,
its ramp included).

Per-parameter state holds tensors only:

* weight: ``rows``/``cols`` (int64, sorted), ``exp_avg``/``exp_avg_sq`` (|R| x |C|), ``step``
  (0-dim float, Adam steps since the last re-localization), ``last_relocalization`` (0-dim int64,
  boundary of the last re-localization, -1 = never); while the matrix records importance, also
  ``importance_avg``/``uncertainty_avg`` (float32, full size);
* bias: ``exp_avg``/``exp_avg_sq`` (|R|), ``step``;
* dense parameters: AdamW's ``exp_avg``/``exp_avg_sq``/``step``.

The global step and the schedule live under the ``"losia"`` key of :meth:`state_dict`.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import Tensor

from losia_cl.errors import ConfigError
from losia_cl.optim.adamw import adamw_update
from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.localize import localize, random_subnet, sensitivity, update_importance_emas
from losia_cl.optim.schedule import SlotSchedule, relocalization_counts, rewarm_factor

logger = logging.getLogger(__name__)

#: state entries that must keep their own dtype (torch casts float state to the parameter's dtype)
_KEEP_DTYPE = ("rows", "cols", "last_relocalization", "relocalizations", "importance_avg", "uncertainty_avg", "step")
#: version of the "losia" entry of the state dict; entries without one were written when LoSiA applied
#: the warm-up + cosine envelope itself (see :attr:`LoSiA.legacy_envelope`)
STATE_FORMAT = 2
#: config fields that must match when loading a state dict
_SCHEDULE_FIELDS = ("rank_factor", "period", "schedule", "init", "output_rank_factor", "output_slot", "subnet_rounding")
#: values of fields missing from older state dicts (their behaviour before the field existed)
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(LoSiAConfig)}



class SubnetObserver(Protocol):
    """What follows a target matrix's subnet (a LoSiA-Pro layer)."""

    def set_subnet(self, rows: Tensor, cols: Tensor, full: bool) -> None:
        """New subnet indices; ``full`` while the matrix records importance (it needs its full gradient)."""

    def release(self) -> None:
        """The optimizer is gone: behave as a plain layer again (full gradients)."""


class LoSiA(torch.optim.Optimizer):
    """LoSiA as a ``torch.optim.Optimizer``.

    Use it like AdamW: ``loss.backward(); opt.clip_grad_norm_(1.0); opt.step(); opt.zero_grad()``.
    Gradient accumulation works as usual (several ``backward()`` calls per ``step()``).

    Outside their recording slot, gradient entries of a target matrix outside its subnet are
    zeroed as soon as they are accumulated (LoSiA-Pro computes only the subnet's gradient).  The
    matrix that records importance keeps its full gradient; :meth:`clip_grad_norm_` counts only
    the block of it that the step applies.
    """

    def __init__(self, params: Iterable[dict[str, Any]], config: LoSiAConfig | None = None) -> None:
        config = config or LoSiAConfig()
        defaults = {
            "lr": config.lr,
            "betas": config.betas,
            "eps": config.eps,
            "weight_decay": config.weight_decay,
            "decoupled_weight_decay": True,
            "hf_epsilon": config.hf_epsilon,
            "losia": False,
        }
        super().__init__(params, defaults)
        self.config = config
        self.global_step = 0
        #: True after loading a state dict written when LoSiA applied the learning-rate envelope itself:
        #: the caller's scheduler must then be moved to ``global_step`` (the ``losia`` method does it)
        self.legacy_envelope = False
        target_groups = self._target_groups()
        if not target_groups:
            raise ConfigError(
                "LoSiA takes the parameter groups that losia_cl.build_losia(model, config) makes (none has "
                "losia=True here); with the Hugging Face Trainer use losia_cl.hf.LoSiATrainer(..., losia_config=...) "
                "or losia_cl.hf.create_optimizer_and_scheduler(model, args, config)"
            )
        num_slots = 1 + max(g["slot"] for g in target_groups)
        offset = config.period if config.init == "importance" else 0
        self.schedule = SlotSchedule(num_slots, config.period, config.schedule, offset)
        self._grad_sinks: dict[int, Tensor] = {}
        self._observers: dict[int, SubnetObserver] = {}
        self._complements: dict[int, tuple[Tensor, Tensor]] = {}
        self._hooks: list[Any] = []
        #: clipping factors waiting for the recording matrices' blocks (their full gradient stays unscaled)
        self._pending_clip: dict[int, float] = {}
        #: calls of :meth:`clip_grad_norm_` since construction (kept in the state dict)
        self.clip_count = 0
        generator = torch.Generator().manual_seed(config.seed)
        for group in target_groups:
            self._validate_group(group)
            self._init_target_state(group, generator)
        self._install_grad_hooks()
        # hooks and LoSiA-Pro layers must not outlive the optimizer: release them when it is collected
        self._finalizer = weakref.finalize(self, _release, self._hooks, self._observers)

    def _target_groups(self) -> list[dict[str, Any]]:
        return [g for g in self.param_groups if g["losia"]]

    @staticmethod
    def _validate_group(group: dict[str, Any]) -> None:
        for key in ("slot", "num_rows", "num_cols"):
            if not isinstance(group.get(key), int):
                raise ConfigError(f"a losia=True parameter group needs an integer {key!r}")
        group.setdefault("name", f"slot{group['slot']}")
        group.setdefault("transposed", False)
        if not 1 <= len(group["params"]) <= 2 or group["params"][0].dim() != 2:
            raise ConfigError(f"group {group['name']!r}: a losia group holds a 2-D weight and optionally its bias")

    def _init_target_state(self, group: dict[str, Any], generator: torch.Generator) -> None:
        weight = group["params"][0]
        d_out, d_in = _oriented(weight, group).shape
        rows, cols = random_subnet(d_out, d_in, group["num_rows"], group["num_cols"], generator)
        rows, cols = rows.to(weight.device), cols.to(weight.device)
        state = self.state[weight]
        state["rows"], state["cols"] = rows, cols
        state["last_relocalization"] = torch.tensor(-1, dtype=torch.int64)
        state["relocalizations"] = torch.tensor(0, dtype=torch.int64)
        self._reset_moments(group)
        self._refresh_complements(group)

    def _refresh_complements(self, group: dict[str, Any]) -> None:
        """Cache the rows and columns outside the subnet in force (used by the gradient-mask hook)."""
        weight = group["params"][0]
        state = self.state[weight]
        d_out, d_in = _oriented(weight, group).shape
        self._complements[id(weight)] = _complements(state["rows"], state["cols"], d_out, d_in)

    def _reset_moments(self, group: dict[str, Any]) -> None:
        """Zero the block's Adam moments; restart its step counter unless ``config.keep_step_count``."""
        keep_step = self.config.keep_step_count
        for param, shape in zip(group["params"], ((group["num_rows"], group["num_cols"]), (group["num_rows"],))):
            state = self.state[param]
            state["exp_avg"] = torch.zeros(shape, dtype=param.dtype, device=param.device)
            state["exp_avg_sq"] = torch.zeros(shape, dtype=param.dtype, device=param.device)
            if not (keep_step and "step" in state):
                state["step"] = torch.tensor(0.0)

    # ------------------------------------------------------------------ hooks
    def _install_grad_hooks(self) -> None:
        ref = weakref.ref(self)
        for group in self._target_groups():
            for param in group["params"]:
                hook = _layerwise_hook if self.config.layerwise else _mask_hook
                self._hooks.append(
                    param.register_post_accumulate_grad_hook(lambda p, g=group, h=hook: h(ref, g, p))
                )

    def close(self) -> None:
        """Remove the gradient hooks on the model's parameters and return LoSiA-Pro layers to plain mode.

        Also done automatically when the optimizer is garbage-collected; call it to be explicit.
        """
        self._finalizer()

    def register_grad_sink(self, param: Tensor, sink: Tensor) -> None:
        """Take ``param``'s subnet gradient from ``sink.grad`` (a |R|x|C| or |R| leaf) when not recording."""
        self._grad_sinks[id(param)] = sink

    def register_subnet_observer(self, weight: Tensor, observer: SubnetObserver) -> None:
        """Call ``observer.set_subnet(rows, cols, full)`` now and whenever ``weight``'s subnet or mode changes.

        ``full`` is True for the steps in which the matrix records importance (it then needs
        its full gradient).  ``observer.release()`` is called when the optimizer is closed or
        collected.  Observers are not part of the state dict.
        """
        self._observers[id(weight)] = observer
        group = self._group_of(weight)
        self._notify(group)

    def _group_of(self, weight: Tensor) -> dict[str, Any]:
        for group in self._target_groups():
            if group["params"][0] is weight:
                return group
        raise KeyError("parameter is not a LoSiA target weight")

    def _notify(self, group: dict[str, Any]) -> None:
        weight = group["params"][0]
        observer = self._observers.get(id(weight))
        if observer is not None:
            state = self.state[weight]
            observer.set_subnet(state["rows"], state["cols"], self.schedule.records(group["slot"], self.global_step))

    # ------------------------------------------------------------------ public views
    def subnets(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{target name: (rows, cols)}`` of the subnets in force (copies, sorted int64)."""
        return {
            g["name"]: (self.state[g["params"][0]]["rows"].clone(), self.state[g["params"][0]]["cols"].clone())
            for g in self._target_groups()
        }

    def target_shapes(self) -> dict[str, tuple[int, int]]:
        """``{target name: (d_out, d_in)}``."""
        return {g["name"]: tuple(_oriented(g["params"][0], g).shape) for g in self._target_groups()}

    def relocalization_counts(self) -> dict[str, int]:
        """``{target name: re-localizations since construction}`` (a matrix that saw no gradient in its
        slot keeps its subnet, and that does not count).  Part of the state dict."""
        return {g["name"]: int(self.state[g["params"][0]]["relocalizations"]) for g in self._target_groups()}

    def num_trainable_parameters(self) -> int:
        """Entries updated per step: Σ|R||C| (+|R| per bias) plus every dense parameter."""
        total = 0
        for g in self.param_groups:
            if g["losia"]:
                total += g["num_rows"] * g["num_cols"] + (g["num_rows"] if len(g["params"]) == 2 else 0)
            else:
                total += sum(p.numel() for p in g["params"])
        return total

    def learning_rate(self, group: dict[str, Any], step: int | None = None) -> float:
        """Learning rate of ``group`` at ``step`` (default: the next step): ``group["lr"]`` times the re-warm factor.

        With ``envelope='official'`` the scheduler sets each target group's ``lr`` with its re-warm
        included (:func:`~losia_cl.optim.lr.losia_scheduler`): ``group["lr"]`` as it is.
        """
        step = self.global_step if step is None else step
        if not group["losia"] or self.config.envelope == "official":
            return group["lr"]
        last = int(self.state[group["params"][0]]["last_relocalization"])
        return group["lr"] * rewarm_factor(step, last, self.config.period, self.config.ramps_from_zero)

    def applied_lr(self, step: int | None = None) -> float:
        """Mean learning rate that ``step`` (default: the next step) applies, weighted by updated entries.

        Each target matrix counts its subnet entries (and bias rows) at :meth:`learning_rate`, each dense
        group its entries at its ``lr``; while the initial subnets are being scored no target is updated
        (its entries count at 0).  The sum over a task's steps is its learning-rate mass.
        """
        step = self.global_step if step is None else step
        scoring = self.schedule.in_scoring_phase(step)
        weighted = entries = 0.0
        for group in self.param_groups:
            if group["losia"]:
                n = group["num_rows"] * group["num_cols"] + (group["num_rows"] if len(group["params"]) == 2 else 0)
                lr = 0.0 if scoring else self.learning_rate(group, step)
            else:
                n, lr = sum(p.numel() for p in group["params"]), group["lr"]
            weighted += n * lr
            entries += n
        return weighted / entries if entries else 0.0

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One optimizer step; then re-localize the matrices whose slot ends here."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        step = self.global_step
        for group in self.param_groups:
            if not group["losia"]:
                self._step_dense(group, step)
            elif not self.config.layerwise:
                self._step_target(group, step)
        self._end_step(step)
        return loss

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0) -> Tensor:
        """Clip the gradient the next :meth:`step` applies to a total norm of ``max_norm``; return its norm.

        The norm covers exactly the entries the step updates: each target matrix's subnet block
        ``G[R, C]`` (LoSiA-Pro's subnet gradient, or the block of the full gradient; for the matrix
        that records importance too, the step applies only its block) and bias rows ``g[R]``, and
        every dense parameter's gradient.  Nothing of a target while all matrices only score
        (``init='importance'``), nor of targets updated inside backward (``layerwise=True``).
        Those gradients are scaled by ``min(1, max_norm / (norm + 1e-6))`` as in
        ``torch.nn.utils.clip_grad_norm_``; the recording matrix's full gradient, which importance
        is scored from, is left as it is and its block is scaled in the step.

        ``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)`` works too; its norm also
        counts the recording matrix's entries outside the block, and it scales them.
        """
        step = self.global_step
        in_place: list[Tensor] = []  # gradients scaled in place (entries outside the block are zero or unused)
        norms: list[Tensor] = []
        deferred: list[int] = []
        for group in self.param_groups:
            if not group["losia"]:
                for p in group["params"]:
                    if p.grad is not None:
                        in_place.append(p.grad)
                        norms.append(torch.linalg.vector_norm(p.grad, norm_type))
                continue
            if self.config.layerwise or self.schedule.in_scoring_phase(step):
                continue
            weight, state = group["params"][0], self.state[group["params"][0]]
            rows, cols = state["rows"], state["cols"]
            recording = self.schedule.records(group["slot"], step)
            sink = None if recording else self._sink_grad(weight)
            if sink is not None:
                in_place.append(sink)
                norms.append(torch.linalg.vector_norm(sink, norm_type))
            elif weight.grad is not None:
                block = _oriented(weight.grad, group).index_select(0, rows).index_select(1, cols)
                norms.append(torch.linalg.vector_norm(block, norm_type))
                if recording:
                    deferred.append(id(weight))
                else:
                    in_place.append(weight.grad)  # the mask hook zeroed every entry outside the block
            if len(group["params"]) == 2:
                bias = group["params"][1]
                grad = None if recording else self._sink_grad(bias)
                if grad is None and bias.grad is not None:
                    grad = bias.grad  # its entries outside R are zero (mask hook) or never applied (recording)
                    norms.append(torch.linalg.vector_norm(bias.grad.index_select(0, rows), norm_type))
                elif grad is not None:
                    norms.append(torch.linalg.vector_norm(grad, norm_type))
                if grad is not None:
                    in_place.append(grad)
        self.clip_count += 1
        if not norms:
            return torch.tensor(0.0)
        device = norms[0].device
        total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), norm_type)
        factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for grad in in_place:
            grad.mul_(factor.to(grad.device, grad.dtype))
        for key in deferred:
            self._pending_clip[key] = float(factor)
        return total

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter and of LoSiA-Pro's gradient sinks."""
        super().zero_grad(set_to_none=set_to_none)
        for sink in self._grad_sinks.values():
            if sink.grad is not None:
                if set_to_none:
                    sink.grad = None
                else:
                    sink.grad.zero_()

    def _step_dense(self, group: dict[str, Any], step: int) -> None:
        lr = group["lr"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = torch.tensor(0.0)
            adamw_update(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], **_hyper(group, lr))

    def _step_target(self, group: dict[str, Any], step: int) -> None:
        weight = group["params"][0]
        state = self.state[weight]
        recording = self.schedule.records(group["slot"], step)
        full_grad = None if weight.grad is None else _oriented(weight.grad, group)
        if recording:
            if full_grad is None:
                if self._sink_grad(weight) is not None:
                    raise RuntimeError(
                        f"LoSiA: {group['name']} records importance at step {step} but has only a subnet "
                        "gradient (was the LoSiA-Pro layer switched to full mode?)"
                    )
                return
            self._record_importance(group, full_grad)
        if self.schedule.in_scoring_phase(step):
            return
        rows, cols = state["rows"], state["cols"]
        block_grad = None if recording else self._sink_grad(weight)
        if block_grad is None:
            if full_grad is None:
                return
            block_grad = full_grad.index_select(0, rows).index_select(1, cols)
            scale = self._pending_clip.get(id(weight))
            if scale is not None:
                block_grad.mul_(scale)
        hyper = _hyper(group, self.learning_rate(group, step))
        w = _oriented(weight, group)
        block = w.index_select(0, rows).index_select(1, cols)
        adamw_update(block, block_grad, state["exp_avg"], state["exp_avg_sq"], state["step"], **hyper)
        w.index_put_((rows.unsqueeze(1), cols.unsqueeze(0)), block)
        if len(group["params"]) == 2:
            self._step_bias(group, rows, recording, hyper)

    def _step_bias(self, group: dict[str, Any], rows: Tensor, recording: bool, hyper: dict[str, Any]) -> None:
        bias = group["params"][1]
        grad = None if recording else self._sink_grad(bias)
        if grad is None:
            if bias.grad is None:
                return
            grad = bias.grad.index_select(0, rows)
        bstate = self.state[bias]
        block = bias.index_select(0, rows)
        adamw_update(block, grad, bstate["exp_avg"], bstate["exp_avg_sq"], bstate["step"], **hyper)
        bias.index_copy_(0, rows, block)

    def _sink_grad(self, param: Tensor) -> Tensor | None:
        sink = self._grad_sinks.get(id(param))
        return None if sink is None else sink.grad

    def _record_importance(self, group: dict[str, Any], full_grad: Tensor) -> None:
        weight = group["params"][0]
        state = self.state[weight]
        importance = sensitivity(_oriented(weight, group), full_grad, self.config.importance)
        if "importance_avg" not in state:
            state["importance_avg"] = torch.zeros_like(importance)
            state["uncertainty_avg"] = torch.zeros_like(importance)
        update_importance_emas(
            state["importance_avg"], state["uncertainty_avg"], importance,
            self.config.beta_importance, self.config.beta_uncertainty,
        )

    def _end_step(self, step: int) -> None:
        boundary = step + 1
        self.global_step = boundary
        self._pending_clip.clear()
        for group in self._target_groups():
            slot = group["slot"]
            relocalizes = self.schedule.relocalizes(slot, boundary)
            if relocalizes:
                self._relocalize(group, boundary)
            if relocalizes or self.schedule.records(slot, step) != self.schedule.records(slot, boundary):
                self._notify(group)

    def _relocalize(self, group: dict[str, Any], boundary: int) -> None:
        weight = group["params"][0]
        state = self.state[weight]
        if "importance_avg" not in state:
            logger.debug("LoSiA: %s saw no gradient in its slot; subnet kept", group["name"])
            return
        score = state.pop("importance_avg").mul_(state.pop("uncertainty_avg"))
        rows, cols, strategy = localize(score, group["num_rows"], group["num_cols"])
        del score
        state["rows"], state["cols"] = rows.to(weight.device), cols.to(weight.device)
        state["last_relocalization"] = torch.tensor(boundary, dtype=torch.int64)
        state["relocalizations"] += 1
        self._reset_moments(group)
        self._refresh_complements(group)
        logger.debug("LoSiA: re-localized %s at step %d (%s)", group["name"], boundary, strategy)

    # ------------------------------------------------------------------ (de)serialization
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: subnets, moments, importance EMAs, steps, the schedule."""
        state_dict = super().state_dict()
        state_dict["losia"] = {
            "format": STATE_FORMAT,
            "global_step": self.global_step,
            "clip_count": self.clip_count,
            "config": self.config.to_dict(),
        }
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load :meth:`state_dict` output; the schedule fields of the config must match."""
        state_dict = dict(state_dict)
        extra = state_dict.pop("losia", None)
        if extra is None:
            raise ConfigError("not a LoSiA state dict: the 'losia' entry is missing")
        saved = {**_FIELD_DEFAULTS, **extra["config"]}
        for key in _SCHEDULE_FIELDS:
            if saved[key] != getattr(self.config, key):
                raise ConfigError(
                    f"LoSiAConfig.{key} = {getattr(self.config, key)!r} differs from the state dict's {saved[key]!r}"
                )
        names = [g.get("name") for g in self.param_groups]
        saved_names = [g.get("name") for g in state_dict["param_groups"]]
        if names != saved_names:
            raise ConfigError("the state dict was saved for other target matrices (group names differ)")
        # before the parent's load, whose post hooks may read them
        self.global_step = int(extra["global_step"])
        self.legacy_envelope = "format" not in extra
        self.clip_count = int(extra.get("clip_count", 0))
        kept: dict[int, dict[str, Tensor]] = {}
        plain: dict[int, dict[str, Any]] = {}
        for index, entries in state_dict["state"].items():
            kept[index] = {k: v.clone() for k, v in entries.items() if k in _KEEP_DTYPE}
            plain[index] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in entries.items() if k not in _KEEP_DTYPE}
        super().load_state_dict({"state": plain, "param_groups": state_dict["param_groups"]})
        params = [p for g in self.param_groups for p in g["params"]]
        for index, entries in kept.items():
            param = params[index]
            for key, value in entries.items():
                self.state[param][key] = value if key == "step" else value.to(param.device)
        for group in self.param_groups:  # keys added since the state dict was written
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self._check_state_shapes()
        for group in self._target_groups():
            state = self.state[group["params"][0]]
            if "relocalizations" not in state:
                done = relocalization_counts(self.schedule, self.global_step)[group["slot"]]
                state["relocalizations"] = torch.tensor(done, dtype=torch.int64)
            self._refresh_complements(group)
            self._notify(group)

    def _check_state_shapes(self) -> None:
        """Raise :class:`ConfigError` if a loaded state tensor does not have the shape the layout above gives it
        (a subnet's indices, its moments, the importance EMAs, a bias's and a dense parameter's moments)."""
        def expect(name: str, key: str, value: Any, shape: tuple[int, ...]) -> None:
            if torch.is_tensor(value) and tuple(value.shape) != shape:
                raise ConfigError(f"state {key!r} of {name!r} has shape {tuple(value.shape)}, expected {shape}")

        for group in self.param_groups:
            name = str(group.get("name"))
            if not group["losia"]:
                for param in group["params"]:
                    for key in ("exp_avg", "exp_avg_sq"):
                        expect(name, key, self.state[param].get(key), tuple(param.shape))
                continue
            weight, block = group["params"][0], (group["num_rows"], group["num_cols"])
            full = tuple(_oriented(weight, group).shape)
            state = self.state[weight]
            for key, size, bound in (("rows", block[0], full[0]), ("cols", block[1], full[1])):
                expect(name, key, state.get(key), (size,))
                indices = state.get(key)
                if indices is not None and indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < bound:
                    raise ConfigError(f"state {key!r} of {name!r} holds indices outside 0 to {bound - 1}")
            for key, shape in (("exp_avg", block), ("exp_avg_sq", block), ("importance_avg", full),
                               ("uncertainty_avg", full)):
                expect(name, key, state.get(key), shape)
            for bias in group["params"][1:]:
                for key in ("exp_avg", "exp_avg_sq"):
                    expect(name, key, self.state[bias].get(key), block[:1])


def _hyper(group: dict[str, Any], lr: float) -> dict[str, Any]:
    """Keyword arguments of :func:`adamw_update` for ``group`` at learning rate ``lr``."""
    return {
        "lr": lr, "betas": group["betas"], "eps": group["eps"], "weight_decay": group["weight_decay"],
        "decoupled_weight_decay": group["decoupled_weight_decay"], "hf_epsilon": group["hf_epsilon"],
    }


def _oriented(tensor: Tensor, group: dict[str, Any]) -> Tensor:
    """A (d_out, d_in) view of a target weight (or its gradient)."""
    return tensor.t() if group.get("transposed") else tensor


def _complements(rows: Tensor, cols: Tensor, d_out: int, d_in: int) -> tuple[Tensor, Tensor]:
    row_mask = torch.ones(d_out, dtype=torch.bool, device=rows.device)
    row_mask[rows] = False
    col_mask = torch.ones(d_in, dtype=torch.bool, device=cols.device)
    col_mask[cols] = False
    return row_mask.nonzero().squeeze(1), col_mask.nonzero().squeeze(1)


def _mask_hook(ref: weakref.ref, group: dict[str, Any], param: Tensor) -> None:
    """Zero accumulated gradient entries outside the subnet (not while the matrix records)."""
    optimizer = ref()
    if optimizer is None or param.grad is None:
        return
    if optimizer.schedule.records(group["slot"], optimizer.global_step):
        return
    row_c, col_c = optimizer._complements[id(group["params"][0])]
    if param is group["params"][0]:
        grad = _oriented(param.grad, group)
        grad.index_fill_(0, row_c, 0)
        grad.index_fill_(1, col_c, 0)
    else:
        param.grad.index_fill_(0, row_c, 0)


def _layerwise_hook(ref: weakref.ref, group: dict[str, Any], param: Tensor) -> None:
    """``layerwise=True``: update the matrix as soon as its gradient is complete, then free it."""
    optimizer = ref()
    if optimizer is None:
        return
    params = group["params"]
    if any(p.grad is None for p in params):
        return  # wait for the bias (or weight) gradient of the same matrix
    with torch.no_grad():
        optimizer._step_target(group, optimizer.global_step)
    for p in params:
        p.grad = None


def _release(hooks: list[Any], observers: dict[int, SubnetObserver]) -> None:
    """Remove the gradient hooks and release the subnet observers (runs once: on close or collection)."""
    for handle in hooks:
        handle.remove()
    hooks.clear()
    for observer in observers.values():
        observer.release()
    observers.clear()
