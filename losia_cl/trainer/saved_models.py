"""Trained models kept in the run folder, in the form their users load them.

After every task, each method's model goes into its folder ``<out>/<method>/``:

* ``model/``: the latest task's model (the default); each task's save replaces the one before;
* ``models/<i>-<task>/``: with ``--save-every-task``, one folder per task ``i`` (1-based), none replaced;
* nothing under ``--no-save``.

A saved folder holds either a ``transformers`` model (``save_pretrained``: ``config.json``,
``model.safetensors``; load it with ``AutoModelForCausalLM.from_pretrained(path)``) or, for a method that
trains one ``peft`` adapter across the tasks, that adapter (``adapter_config.json``,
``adapter_model.safetensors``; load it with ``PeftModel.from_pretrained(base, path)`` over the run's base
model).  Both hold the tokenizer and ``saved_model.json`` (:class:`SavedModel`).  A PiSSA adapter mutates
the base model's weights when it starts; it is saved converted to the equivalent LoRA adapter of twice its
rank over the unmodified base model (peft's ``path_initial_model_for_weight_conversion``), so it loads over
the same base model as the others.

A folder only appears complete: it is written into a new temporary folder ``.<name>.<random>.tmpdir``
(created with ``mkdir``, so nothing planted beforehand lies inside it; its files get the permissions the
user's umask gives and are synced), then renamed
into place; a folder it replaces is first renamed aside to ``.<name>.<random>.old`` and removed afterwards.
A process killed at any moment leaves either the previous complete folder, the new complete folder, or
(between the two renames) none; :func:`remove_stale_model_folders` clears the leftovers at the next start.
Only the process of rank 0 writes.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from losia_cl.errors import DataError
from losia_cl.files import check_within, write_error
from losia_cl.optim.pro import unpatch
from losia_cl.results import read_json
from losia_cl.trainer.files import atomic_write_json, inside

logger = logging.getLogger(__name__)

#: The latest task's model in a method's folder (without --save-every-task).
LATEST = "model"
#: The folder of the per-task models (--save-every-task).
PER_TASK = "models"
#: The description written into every saved folder.
SAVED_FILE = "saved_model.json"
SAVED_FORMAT = "losia_cl.saved_model/1"
#: ``kind`` of a saved folder: a whole transformers model, or a peft adapter over the base model.
KINDS = ("transformers", "peft")
_LEFTOVER = re.compile(r"\..+\.[0-9a-f]{16}\.(tmpdir|old)")


@dataclass
class SavedModel:
    """``saved_model.json``: what a saved folder holds and how to load it."""

    kind: str  #: "transformers" (AutoModelForCausalLM.from_pretrained) or "peft" (PeftModel over base_model)
    method: str
    base_model: str  #: the run's --model (the base of a peft adapter)
    stage: int  #: tasks trained (1-based index of the task just trained)
    task: str  #: the task just trained
    format: str = SAVED_FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, folder: Path) -> SavedModel:
        """The description in ``folder``; :class:`DataError` naming the file when it is missing or not ours."""
        path = folder / SAVED_FILE
        data = read_json(path)
        if data.get("format") != SAVED_FORMAT:
            raise DataError(f"{path}: not a losia-cl saved model (format {data.get('format')!r:.40}, expected "
                            f"{SAVED_FORMAT!r})")
        if data.get("kind") not in KINDS:
            raise DataError(f"{path}: key 'kind' must be one of {', '.join(KINDS)}, got {data.get('kind')!r:.40}")
        for key in ("method", "base_model", "task"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise DataError(f"{path}: key {key!r} must be a non-empty string")
        stage = data.get("stage")
        if isinstance(stage, bool) or not isinstance(stage, int) or stage < 1:
            raise DataError(f"{path}: key 'stage' must be an integer >= 1, got {stage!r:.40}")
        return cls(kind=data["kind"], method=data["method"], base_model=data["base_model"], stage=stage,
                   task=data["task"])


def stage_folder_name(stage: int, task: str) -> str:
    """``<stage>-<task>``: the folder of one task's model under :data:`PER_TASK`."""
    return f"{stage}-{task}"


def saved_paths(tasks: list[str], every_task: bool, first: int = 0) -> dict[str, Any]:
    """The ``saved_models`` entry of results.json: paths relative to the method's folder.

    ``final``: the model after the last task; ``tasks``: ``{task: path}`` of every kept task's model
    (``{}`` unless ``every_task``), the tasks from index ``first`` on (those the run trained).
    """
    if not every_task:
        return {"final": LATEST, "tasks": {}}
    per_task = {task: f"{PER_TASK}/{stage_folder_name(i, task)}" for i, task in enumerate(tasks, 1) if i > first}
    return {"final": per_task[tasks[-1]], "tasks": per_task}


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a peft model (its adapter is what is saved)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _sync_tree(folder: Path, mode: int) -> None:
    """Give every file under ``folder`` the permissions ``mode`` and fsync it and the folders themselves (a rename
    then publishes durable data)."""
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            os.chmod(Path(parent) / name, mode)
            fd = os.open(Path(parent) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover - folders cannot be synced on some file systems
            pass
        finally:
            os.close(fd)


def _new_temp_folder(target: Path) -> Path:
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmpdir")
        try:
            tmp.mkdir()  # exclusive: a folder (or link) already there is never reused
            return tmp
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue


def _write_model(model: nn.Module, tokenizer: Any, folder: Path, initial_adapter: dict[str, Any] | None) -> str:
    """Fill the new, empty ``folder``; the kind written (transformers' progress bar for the shards stays hidden)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _write_model_files(model, tokenizer, folder, initial_adapter)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _write_model_files(model: nn.Module, tokenizer: Any, folder: Path, initial_adapter: dict[str, Any] | None) -> str:
    if not is_peft_model(model):
        model.save_pretrained(folder, safe_serialization=True)
        kind = "transformers"
    elif initial_adapter is None:
        model.save_pretrained(folder, safe_serialization=True)
        kind = "peft"
    else:
        from safetensors.torch import save_file

        # the adapter as it started, for peft's conversion to a LoRA over the unmodified base model
        # (peft loads it as an extra adapter named after its folder, which must be a plain name)
        holder = folder.with_name(folder.name + "-initial")
        initial = holder / "initial_adapter"
        initial.mkdir(parents=True)
        try:
            save_file({k: v.contiguous() for k, v in initial_adapter.items()}, initial / "adapter_model.safetensors")
            model.save_pretrained(folder, safe_serialization=True, path_initial_model_for_weight_conversion=str(initial))
        finally:
            shutil.rmtree(holder, ignore_errors=True)
        kind = "peft"
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return kind


def save_model(model: nn.Module, tokenizer: Any, target: Path, description: SavedModel, *, root: Path,
               initial_adapter: dict[str, Any] | None = None) -> SavedModel:
    """Write ``model`` (and ``tokenizer``) to the folder ``target`` inside ``root``, replacing it as one piece.

    ``initial_adapter``: the state dict of a base-mutating adapter (PiSSA) as it started (see the module
    docstring).  ``description.kind`` is set from what was written.  Returns the description written.
    """
    started = time.perf_counter()
    check_within(target, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_within(target, root)
    tmp = _new_temp_folder(target)
    try:
        kind = _write_model(model, tokenizer, tmp, initial_adapter)
        description.kind = kind
        written = atomic_write_json(inside(tmp, SAVED_FILE), description.to_json(), root=root)
        # the libraries create some files private (0600): every file gets the mode the umask gives ours
        _sync_tree(tmp, written.stat().st_mode & 0o777)
        check_within(target, root)
        old = None
        if target.exists() or target.is_symlink():
            old = target.with_name(f".{target.name}.{secrets.token_hex(8)}.old")
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(target, error) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_symlink():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("%s: saved the model after %s (%s) in %s in %.1f s", description.method, description.task, kind, target,
                time.perf_counter() - started)
    return description


def remove_stale_model_folders(folder: Path) -> list[Path]:
    """Delete the temporary and replaced model folders an interrupted save left in ``folder`` (and ``models/``)."""
    removed = []
    for parent in (folder, folder / PER_TASK):
        if not parent.is_dir() or parent.is_symlink():
            continue
        for entry in parent.iterdir():
            if _LEFTOVER.fullmatch(entry.name) or (entry.name.endswith(".tmpdir-initial")
                                                   and _LEFTOVER.fullmatch(entry.name.removesuffix("-initial"))):
                if entry.is_symlink() or not entry.is_dir():
                    entry.unlink()
                else:
                    shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    if removed:
        logger.info("removed %d model folder(s) left by an interrupted save in %s", len(removed), folder)
    return removed


class ModelSaver:
    """Saves one method's model as the run's settings ask: after the last task (``save_models``), or after every
    task (``save_every_task``); the trainer decides when to call :meth:`save`."""

    def __init__(self, folder: Path, root: Path, method: str, base_model: str, *, enabled: bool,
                 every_task: bool, writes: bool = True) -> None:
        self.folder = folder
        self.root = root
        self.method = method
        self.base_model = base_model
        self.enabled = enabled
        self.every_task = every_task
        self.writes = writes  #: False in every process but rank 0

    def target(self, stage: int, task: str) -> Path:
        if self.every_task:
            return inside(self.folder, PER_TASK, stage_folder_name(stage, task))
        return inside(self.folder, LATEST)

    def clean(self) -> None:
        """Remove what an interrupted save left behind."""
        if self.enabled and self.writes:
            remove_stale_model_folders(self.folder)

    def save(self, model: nn.Module, tokenizer: Any, stage: int, task: str,
             initial_adapter: dict[str, Any] | None = None) -> SavedModel | None:
        """Save the model after task ``task`` (the ``stage``-th); None when saving is off or not this process's."""
        if not (self.enabled and self.writes):
            return None
        unpatch(model)  # LoSiA-Pro layers (if any are left) back to plain nn.Linear: the transformers layout
        description = SavedModel(kind="transformers", method=self.method, base_model=self.base_model, stage=stage,
                                 task=task)
        return save_model(model, tokenizer, self.target(stage, task), description, root=self.root,
                          initial_adapter=initial_adapter if is_peft_model(model) else None)

    def pointers(self, tasks: list[str], first: int = 0) -> dict[str, Any] | None:
        """The ``saved_models`` entry of results.json (None when saving is off); ``first``: the index of the first
        task the run trained (a continued run keeps no model of the earlier run's tasks)."""
        return saved_paths(tasks, self.every_task, first) if self.enabled else None

