"""A 3-layer toy trained by losia-cl's LoSiA and, when a checkout is at hand, by the official LoSiA code.

The official code (``KlozeWang/LoSiA``) is never part of losia-cl: :func:`load_official` imports it from
a checkout given by the caller (``LOSIA_OFFICIAL_DIR`` in the tests), replacing its CUDA extension by
a pure-torch module of the one operation it needs.  :func:`run_official` wires it as its training
script's per-layer mode does: one ``LoSiAdamW`` and one LoSiA scheduler per target matrix, one
``torch.optim.Adam`` and one warm-up + cosine scheduler per other parameter, each stepped in the
parameter's post-accumulate-grad hook; its initial subnets are losia-cl's, so both start alike.

``python tests/official_toy.py DIR`` replays the official code in DIR, prints the agreement of
``LoSiAConfig.reference()`` with it and writes the official run's fingerprint to
``tests/data/official_toy.json`` (read by ``tests/test_optim_official.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch

from losia_cl import LoSiAConfig, build_losia
from losia_cl.optim.lr import losia_scheduler

FIXTURE = Path(__file__).resolve().parent / "data" / "official_toy.json"

#: the toy: 3 decoder layers (7 target matrices each), p = 1/4, T = 5, 60 steps, 10% warm-up
LAYERS, RANK_FACTOR, PERIOD, STEPS, LR, WARMUP_RATIO, MIN_LR_RATIO = 3, 1 / 4, 5, 60, 1e-2, 0.1, 0.1
MODEL_SEED, DATA_SEED = 11, 12


def make_model() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )
    torch.manual_seed(MODEL_SEED)
    return LlamaForCausalLM(config)


def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(DATA_SEED)
    return [torch.randint(0, 128, (4, 16), generator=generator) for _ in range(STEPS)]


def reference_config(period: int = PERIOD, **overrides) -> LoSiAConfig:
    return LoSiAConfig.reference(rank_factor=RANK_FACTOR, period=period, lr=LR, warmup_ratio=WARMUP_RATIO,
                                 min_lr_ratio=MIN_LR_RATIO, pro=False, **overrides)


@dataclass
class Run:
    """What a run did: ``events[(matrix, boundary)] = (rows, cols)`` of each re-localization, the initial
    subnets, and the weights before and after."""

    events: dict[tuple[str, int], tuple[list[int], list[int]]]
    initial: dict[str, tuple[torch.Tensor, torch.Tensor]]
    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]
    slots: dict[str, int]


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_ours(config: LoSiAConfig | None = None) -> Run:
    """Train the toy with losia-cl's LoSiA (``config``, default the reference mode) and its scheduler."""
    model = make_model()
    before = _weights(model)
    optimizer = build_losia(model, config or reference_config())
    scheduler = losia_scheduler(optimizer, STEPS)
    targets = [g for g in optimizer.param_groups if g["losia"]]
    initial = optimizer.subnets()
    events = {}
    for step, ids in enumerate(batches()):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        subnets = optimizer.subnets()
        for group in targets:
            if int(optimizer.state[group["params"][0]]["last_relocalization"]) == step + 1:
                rows, cols = subnets[group["name"]]
                events[(group["name"], step + 1)] = (rows.tolist(), cols.tolist())
    slots = {g["name"]: g["slot"] for g in targets}
    optimizer.close()
    return Run(events, initial, before, _weights(model), slots)


@contextlib.contextmanager
def _official_imports(root: Path):
    """Import the official packages from ``root``: a pure-torch stand-in for their CUDA extension, and
    ``LRScheduler`` taking the ``verbose`` argument that torch >= 2.7 dropped."""
    from torch.optim import lr_scheduler
    from torch.utils import cpp_extension

    extension = types.ModuleType("index_select_dim2")

    def index_select_dim2(full: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, blocks: int) -> torch.Tensor:
        return full.index_select(0, rows).index_select(1, cols)  # out[i, j] = full[rows[i], cols[j]]

    extension.index_select_dim2 = index_select_dim2
    saved = {"load": cpp_extension.load, "LRScheduler": lr_scheduler.LRScheduler, "path": list(sys.path)}
    base = lr_scheduler.LRScheduler
    if "verbose" not in inspect.signature(base.__init__).parameters:
        class LRScheduler(base):  # noqa: D401 - accepts and ignores the removed argument
            def __init__(self, optimizer, last_epoch=-1, verbose="deprecated"):
                super().__init__(optimizer, last_epoch)

        lr_scheduler.LRScheduler = LRScheduler
    cpp_extension.load = lambda *args, **kwargs: extension
    sys.modules["index_select_dim2"] = extension
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        cpp_extension.load = saved["load"]
        lr_scheduler.LRScheduler = saved["LRScheduler"]
        sys.path[:] = saved["path"]


def load_official(root: Path) -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """``(losia_torch, losia_torch.losia_projector_cuda, peft_pretraining.training_utils)`` from the checkout."""
    root = Path(root).resolve()
    for name in list(sys.modules):  # a previous import from another checkout
        if name.split(".")[0] in ("losia_torch", "peft_pretraining"):
            del sys.modules[name]
    with _official_imports(root):
        losia_torch = importlib.import_module("losia_torch")
        projector = importlib.import_module("losia_torch.losia_projector_cuda")
        training_utils = importlib.import_module("peft_pretraining.training_utils")
    return losia_torch, projector, training_utils


def run_official(root: Path, ours: Run, period: int = PERIOD) -> Run:
    """Train the toy with the official code in ``root`` (slot length ``period``), from the initial subnets
    and with the time slots of the losia-cl run ``ours``."""
    import warnings

    losia_torch, projector, training_utils = load_official(root)
    initial, slots = ours.initial, ours.slots
    model = make_model()
    before = _weights(model)
    modules = dict(model.named_modules())
    num_slots = 1 + max(slots.values())
    warmup = int(STEPS * WARMUP_RATIO)
    steppers, target_of = {}, {}
    for name, module in modules.items():
        if name not in slots:
            continue
        weight = module.weight
        info = {
            "params": [weight], "rank_factor": RANK_FACTOR, "type": "normal", "update_type": "asy_period",
            "taylor_type": "param_mix", "imp_beta1": 0.85, "imp_beta2": 0.85, "total_id": num_slots,
            "id": slots[name], "period": period, "scale": 1.0, "layer": None,
        }
        optimizer = losia_torch.LoSiAdamW([info], lr=LR, weight_decay=0.0, no_deprecation_warning=True)
        proj = projector.LoSiAProjector(
            shape=weight.shape, keys_shape=[int(RANK_FACTOR * d) for d in weight.shape], device=weight.device,
            dtype=weight.dtype, taylor_type="param_mix", beta1=0.85, beta2=0.85, scale=1.0, layer=None,
        )
        proj.keys_x, proj.keys_y = (t.clone() for t in initial[name])
        optimizer.state[weight]["projector"] = proj  # what its first step would build, with our subnet
        scheduler = losia_torch.get_scheculer_losia(
            optimizer=optimizer, scheduler_type="cosine_restarts", num_training_steps=STEPS,
            cycle_length=period * num_slots, warmup_steps=warmup, restart_warmup_steps=period,
            min_lr_ratio=MIN_LR_RATIO,
        )
        optimizer.set_scheduler(scheduler)
        steppers[weight] = (optimizer, scheduler)
        target_of[name] = (weight, optimizer, scheduler)
    for p in model.parameters():
        if p not in steppers:
            optimizer = torch.optim.Adam([p], lr=LR, weight_decay=0.0)
            scheduler = training_utils.get_scheculer(
                optimizer=optimizer, scheduler_type="cosine_restarts", num_training_steps=STEPS,
                restart_warmup_steps=warmup, warmup_steps=warmup, min_lr_ratio=MIN_LR_RATIO,
            )
            steppers[p] = (optimizer, scheduler)

    def hook(p: torch.Tensor) -> None:  # the training script's per-layer hook: step, zero, schedule
        if p.grad is None:
            return
        optimizer, scheduler = steppers[p]
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()

    handles = [p.register_post_accumulate_grad_hook(hook) for p in model.parameters()]
    events = {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):  # it prints "reselect"
        warnings.simplefilter("ignore")
        for step, ids in enumerate(batches()):
            model(input_ids=ids, labels=ids).loss.backward()
            for name, (weight, optimizer, scheduler) in target_of.items():
                if scheduler.latest_restart_epochs[0] == step + 1:
                    rows, cols = optimizer.state[weight]["projector"].get_key()
                    events[(name, step + 1)] = (sorted(rows.tolist()), sorted(cols.tolist()))
    for handle in handles:
        handle.remove()
    return Run(events, initial, before, _weights(model), slots)


def agreement(ours: Run, official: Run) -> tuple[int, int, float]:
    """(re-localizations of ``official`` that ``ours`` made identically, their number, max |ΔW|)."""
    matched = sum(ours.events.get(key) == value for key, value in official.events.items())
    delta = max((ours.after[k] - official.after[k]).abs().max().item() for k in official.after)
    return matched, len(official.events), delta


def _digest(rows: list[int], cols: list[int]) -> str:
    return hashlib.sha1(json.dumps([rows, cols]).encode()).hexdigest()[:10]


def fingerprint(run: Run) -> dict:
    """A compact, JSON-able record of a run: each re-localization's subnet hash, and per parameter the
    sum and the sum of absolute values of its change (float64)."""
    changes = {}
    for name, after in run.after.items():
        delta = after.double() - run.before[name].double()
        changes[name] = [delta.sum().item(), delta.abs().sum().item()]
    return {
        "relocalizations": {f"{name}@{b}": _digest(*value) for (name, b), value in sorted(run.events.items())},
        "changes": changes,
    }


def compare_to_fingerprint(run: Run, recorded: dict) -> tuple[int, int, float]:
    """(recorded re-localizations ``run`` made identically, their number, largest difference of the
    per-parameter change sums, relative to the parameter's recorded sum of |change|)."""
    mine = fingerprint(run)
    matched = sum(mine["relocalizations"].get(k) == v for k, v in recorded["relocalizations"].items())
    worst = max(
        max(abs(a - b) for a, b in zip(mine["changes"][name], ref)) / max(ref[1], 1e-12)
        for name, ref in recorded["changes"].items()
    )
    return matched, len(recorded["relocalizations"]), worst


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    root = Path(argv[0])
    for label, config in (("reference()", reference_config()),
                          ("reference(envelope='current')", reference_config(envelope="current"))):
        ours = run_ours(config)
        official = run_official(root, ours)
        matched, total, delta = agreement(ours, official)
        print(f"{label}: {matched}/{total} re-localizations matched, max |dW| = {delta:.2g}")
    FIXTURE.parent.mkdir(exist_ok=True)
    record = {
        "command": "python tests/official_toy.py $LOSIA_OFFICIAL_DIR",
        "toy": {"layers": LAYERS, "rank_factor": RANK_FACTOR, "period": PERIOD, "steps": STEPS, "lr": LR,
                "warmup_ratio": WARMUP_RATIO, "min_lr_ratio": MIN_LR_RATIO, "torch": torch.__version__},
        **fingerprint(official),
    }
    FIXTURE.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main(sys.argv[1:]))
