"""Configuration of the LoSiA optimizer: one documented, validated dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from losia_cl.errors import ConfigError
from losia_cl.fields import documented

IMPORTANCE_KINDS = ("mix", "first", "second")
SCHEDULES = ("async", "sync")
INITS = ("random", "importance")
DENSE_PARAMS = ("frozen", "adamw", "adam")
OUTPUT_SLOTS = ("last", "first")
SUBNET_ROUNDINGS = ("floor", "int")
ENVELOPES = ("current", "official")


@dataclass
class LoSiAConfig:
    """Hyper-parameters of LoSiA (Wang, Qi & Xu, EMNLP 2025).

    Every field is documented in its ``metadata["help"]`` (the CLI help is generated from it)
    and validated in ``__post_init__``; a bad value raises :class:`~losia_cl.errors.ConfigError`
    naming the field and the allowed range.
    """

    rank_factor: float = documented(
        "p in (0, 1]: each target matrix trains a sub-matrix of floor(p*d_out) rows x floor(p*d_in) columns "
        "(at least 1 each; see subnet_rounding).",
        1 / 8,
    )
    period: int = documented(
        "T >= 1: length of one importance-recording time slot, in optimizer steps. Layer i records during "
        "its slot and re-localizes at the slot's end.",
        50,
    )
    lr: float = documented(
        "Peak learning rate (> 0): every parameter group's initial lr (a scheduler may change it at every step).", 1e-4
    )
    betas: tuple[float, float] = documented("Adam coefficients (beta1, beta2), each in [0, 1).", (0.9, 0.999))
    eps: float = documented("Adam denominator epsilon (> 0).", 1e-6)
    weight_decay: float = documented("Decoupled weight decay (>= 0), applied to the trained subnet entries only.", 0.0)
    warmup_ratio: float = documented(
        "Fraction in [0, 1) of all training steps spent in the linear warm-up of the learning-rate envelope "
        "(losia_cl.optim.lr.losia_scheduler; the losia method uses it).",
        0.0,
    )
    min_lr_ratio: float = documented(
        "In [0, 1]: the cosine envelope decays from lr to min_lr_ratio*lr at the last step (1 = constant).", 0.1
    )
    importance: str = documented(
        "Taylor sensitivity of an entry, with a = W*G: 'mix' |a - a^2/2| (default), 'first' |a|, 'second' a^2.",
        "mix",
    )
    beta_importance: float = documented("beta1 in [0, 1) of the importance EMA.", 0.85)
    beta_uncertainty: float = documented("beta2 in [0, 1) of the uncertainty EMA |I - EMA(I)|.", 0.85)
    schedule: str = documented(
        "'async' (default): layers take turns, one time slot each; 'sync': all layers record in the first "
        "slot of every cycle of N*T steps and re-localize together.",
        "async",
    )
    init: str = documented(
        "Initial subnet: 'random' (reference behaviour) or 'importance' (the first T steps only score every "
        "target matrix, without updating it, and all re-localize at step T).",
        "random",
    )
    output_rank_factor: float = documented(
        "q in [0, 1]: 0 leaves the output head out of LoSiA (frozen or dense, see dense_params); q > 0 makes it "
        "an extra time slot whose subnet is floor(q*V) rows x all columns.",
        0.0,
    )
    output_slot: str = documented(
        "Time slot of the output head when output_rank_factor > 0: 'last' (default, after the decoder blocks) "
        "or 'first' (slot 0, the blocks after it, as the official code).",
        "last",
    )
    subnet_rounding: str = documented(
        "Subnet size of a d-sized dimension: 'floor' (default) max(1, floor(p*d)); 'int' int(p*d) as the "
        "official code, where a matrix whose subnet would be empty stays frozen.",
        "floor",
    )
    dense_params: str = documented(
        "Non-target parameters (embeddings, norms, head when q = 0): 'frozen' (default, a true PEFT method), "
        "'adamw' (trained densely with AdamW at the group's learning rate) or 'adam' (torch.optim.Adam as the "
        "official code: L2 weight decay added to the gradient, eps 1e-8).",
        "frozen",
    )
    keep_step_count: bool = documented(
        "False (default): a re-localized block restarts Adam's step counter with its zeroed moments, so bias "
        "correction starts afresh. True: the counter keeps counting (official code): the zeroed moments get "
        "the bias correction of an old step.",
        False,
    )
    ramps_from_zero: bool = documented(
        "False (default): the warm-up of the envelope and each re-warm ramp start at lr/W and lr/T. True: at 0 "
        "(lr*s/W and lr*(s-r)/T, as the official code and Hugging Face schedules), so the first step after a "
        "re-localization runs at lr 0.",
        False,
    )
    envelope: str = documented(
        "'current' (default): a re-localized matrix runs at min(1, (s-r+1)/T) (with ramps_from_zero (s-r)/T) "
        "times the group's current lr, so any scheduler drives it. 'official': the official code's per-matrix "
        "schedule, which losia_cl.optim.lr.losia_scheduler applies to each group (needs ramps_from_zero): warm-up "
        "s/W with W = int(warmup_ratio*N) overriding re-warms, then the ramp (s-r)/T times the cosine frozen at "
        "progress r/(N-W), the cosine at progress (s-W)/(N-W) otherwise; other schedulers then give no re-warm.",
        "current",
    )
    hf_epsilon: bool = documented(
        "False (default): torch's AdamW, eps added to the bias-corrected sqrt(v_hat). True: eps added to the "
        "raw sqrt(v) and the step scaled by sqrt(1-beta2^t)/(1-beta1^t) (Hugging Face's old AdamW, the "
        "official code).",
        False,
    )
    target_modules: tuple[str, ...] | None = documented(
        "Module-name patterns (fnmatch globs or dotted suffixes like 'q_proj') overriding the default targets "
        "(every linear layer inside the repeated decoder blocks). None = default.",
        None,
    )
    pro: bool = documented(
        "LoSiA-Pro (default): every nn.Linear target becomes a layer that saves only the subnet's input columns "
        "and computes only the subnet's weight gradient (less memory and time, the same updates). Targets it "
        "cannot take (GPT-2 Conv1D) and layerwise=True use the plain path. False: the plain path everywhere.",
        True,
    )
    layerwise: bool = documented(
        "Update each target matrix inside its post-accumulate-grad hook and free its gradient at once (less "
        "memory; plain path, no LoSiA-Pro layers). Gives up gradient clipping and gradient accumulation for "
        "target matrices.",
        False,
    )
    seed: int = documented("Seed of the random initial subnets (init='random').", 0)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = (self.target_modules,)
        elif self.target_modules is not None:
            self.target_modules = tuple(self.target_modules)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field out of its allowed range."""
        _check(0 < self.rank_factor <= 1, "rank_factor", self.rank_factor, "in (0, 1]")
        _check(isinstance(self.period, int) and self.period >= 1, "period", self.period, "an integer >= 1")
        _check(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "> 0")
        _check(len(self.betas) == 2, "betas", self.betas, "a pair (beta1, beta2)")
        for i, b in enumerate(self.betas):
            _check(0 <= b < 1, f"betas[{i}]", b, "in [0, 1)")
        _check(self.eps > 0, "eps", self.eps, "> 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", self.min_lr_ratio, "in [0, 1]")
        _check(self.importance in IMPORTANCE_KINDS, "importance", self.importance, f"one of {IMPORTANCE_KINDS}")
        _check(0 <= self.beta_importance < 1, "beta_importance", self.beta_importance, "in [0, 1)")
        _check(0 <= self.beta_uncertainty < 1, "beta_uncertainty", self.beta_uncertainty, "in [0, 1)")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}")
        _check(self.init in INITS, "init", self.init, f"one of {INITS}")
        _check(0 <= self.output_rank_factor <= 1, "output_rank_factor", self.output_rank_factor, "in [0, 1]")
        _check(isinstance(self.pro, bool), "pro", self.pro, "True or False")
        _check(isinstance(self.layerwise, bool), "layerwise", self.layerwise, "True or False")
        _check(self.dense_params in DENSE_PARAMS, "dense_params", self.dense_params, f"one of {DENSE_PARAMS}")
        _check(self.output_slot in OUTPUT_SLOTS, "output_slot", self.output_slot, f"one of {OUTPUT_SLOTS}")
        _check(
            self.subnet_rounding in SUBNET_ROUNDINGS, "subnet_rounding", self.subnet_rounding,
            f"one of {SUBNET_ROUNDINGS}",
        )
        for name in ("keep_step_count", "ramps_from_zero", "hf_epsilon"):
            _check(isinstance(getattr(self, name), bool), name, getattr(self, name), "True or False")
        _check(self.envelope in ENVELOPES, "envelope", self.envelope, f"one of {ENVELOPES}")
        _check(
            self.envelope != "official" or self.ramps_from_zero, "envelope", self.envelope,
            "'current' when ramps_from_zero=False (the official schedule ramps from 0)",
        )
        if self.target_modules is not None:
            _check(
                len(self.target_modules) > 0 and all(isinstance(t, str) and t for t in self.target_modules),
                "target_modules",
                self.target_modules,
                "None or a non-empty list of non-empty name patterns",
            )

    @classmethod
    def reference(cls, **overrides: Any) -> LoSiAConfig:
        """The official LoSiA code's choices (see docs/fidelity.md), with ``overrides`` on top.

        Adam's step counter kept across re-localizations, ramps from 0, the official learning-rate
        schedule (``envelope='official'``, applied by :func:`~losia_cl.optim.lr.losia_scheduler`), 10%
        warm-up, the output head in slot 0, subnet sizes int(p*d), non-targets trained by Adam with L2
        decay and eps 1e-8, Hugging Face's epsilon, random initial subnets, the async schedule.
        """
        return cls(**{**REFERENCE, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the configuration."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        out["target_modules"] = list(self.target_modules) if self.target_modules is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoSiAConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown LoSiAConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    @staticmethod
    def field_help() -> dict[str, str]:
        """Field name -> its documentation (the single source of the CLI help)."""
        return {f.name: f.metadata["help"] for f in fields(LoSiAConfig)}


#: the fields :meth:`LoSiAConfig.reference` sets
REFERENCE: dict[str, Any] = {
    "keep_step_count": True,
    "ramps_from_zero": True,
    "envelope": "official",
    "warmup_ratio": 0.1,
    "output_slot": "first",
    "subnet_rounding": "int",
    "dense_params": "adam",
    "hf_epsilon": True,
    "init": "random",
    "schedule": "async",
}


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"LoSiAConfig.{name} = {value!r} is invalid: it must be {allowed}")
