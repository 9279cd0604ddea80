"""Build LoSiA for a model: find the targets, group the parameters, patch LoSiA-Pro layers.

The optimizer itself (:class:`~losia_cl.optim.losia.LoSiA`) only takes parameter groups; every
change to the model (``requires_grad`` flags, the LoSiA-Pro layer swap) happens here.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from losia_cl.optim.config import LoSiAConfig
from losia_cl.optim.losia import LoSiA
from losia_cl.optim.pro import attach_pro
from losia_cl.optim.targets import Target, find_targets

logger = logging.getLogger(__name__)


def losia_param_groups(model: nn.Module, config: LoSiAConfig) -> tuple[list[dict[str, Any]], list[Target]]:
    """LoSiA's parameter groups for ``model`` and the targets they were made from.

    Targets are found structurally (:func:`~losia_cl.optim.targets.find_targets`); each becomes a
    ``losia=True`` group (its weight, and its bias if any).  Non-target parameters are frozen
    (``dense_params='frozen'``) or gathered in one dense group.  Sets ``requires_grad`` accordingly.
    """
    targets = find_targets(
        model, config.rank_factor, config.target_modules, config.output_rank_factor,
        head_first=config.output_slot == "first", rounding=config.subnet_rounding,
    )
    empty = [t for t in targets if 0 in t.subnet_shape]
    if empty:
        logger.info("LoSiA: %d target matrices have an empty subnet at int(p*d) and stay frozen", len(empty))
        for t in empty:
            for p in (t.weight, t.bias):
                if p is not None:
                    p.requires_grad_(False)
        targets = [t for t in targets if 0 not in t.subnet_shape]
    groups = [_target_group(t) for t in targets]
    seen = {id(p) for g in groups for p in g["params"]}
    seen |= {id(p) for t in empty for p in (t.weight, t.bias) if p is not None}
    dense = []
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            dense.append(p)
    for g in groups:
        for p in g["params"]:
            p.requires_grad_(True)
    train_dense = config.dense_params != "frozen"
    for p in dense:
        p.requires_grad_(train_dense)
    if train_dense and dense:
        group: dict[str, Any] = {"params": dense, "losia": False, "name": "dense"}
        if config.dense_params == "adam":  # torch.optim.Adam's defaults, as the official code
            group.update(decoupled_weight_decay=False, hf_epsilon=False, eps=1e-8)
        groups.append(group)
    return groups, targets


def build_losia(model: nn.Module, config: LoSiAConfig | None = None) -> LoSiA:
    """LoSiA for ``model``: parameter groups from :func:`losia_param_groups`, LoSiA-Pro layers if asked.

    With ``config.pro`` (the default) the target ``nn.Linear`` layers are swapped for LoSiA-Pro
    layers (undo with :func:`losia_cl.unpatch`); other targets (GPT-2 ``Conv1D``), and every target
    with ``layerwise=True``, stay on the plain path, said in one log line.  The learning rate is
    ``config.lr`` in every group; drive it with any scheduler (e.g.
    :func:`losia_cl.optim.lr.losia_scheduler`, the config's warm-up + cosine envelope).  Call
    ``optimizer.close()`` when done.
    """
    config = config or LoSiAConfig()
    groups, targets = losia_param_groups(model, config)
    optimizer = LoSiA(groups, config)
    if config.pro:
        pro = [] if config.layerwise else [t for t in targets if isinstance(t.module, nn.Linear)]
        if len(pro) < len(targets):
            kinds = sorted({type(t.module).__name__ for t in targets if t not in pro})
            why = "layerwise=True" if config.layerwise else f"LoSiA-Pro needs nn.Linear, not {', '.join(kinds)}"
            logger.info(
                "LoSiA: %d of %d target matrices on the plain path (%s)", len(targets) - len(pro), len(targets), why
            )
        attach_pro(model, optimizer, pro)
    return optimizer


def _target_group(target: Target) -> dict[str, Any]:
    num_rows, num_cols = target.subnet_shape
    params = [target.weight] + ([target.bias] if target.bias is not None else [])
    return {
        "params": params,
        "losia": True,
        "slot": target.slot,
        "name": target.name,
        "num_rows": num_rows,
        "num_cols": num_cols,
        "transposed": target.transposed,
    }
