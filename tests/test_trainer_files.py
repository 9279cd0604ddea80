"""Atomic writes, with the fsync and rename done in place or on a background thread."""

from __future__ import annotations

import pytest
import torch

from losia_cl.trainer.checkpoint import Checkpoint
from losia_cl.trainer.files import DeferredSync, atomic_torch_save, atomic_write_text


def test_deferred_writes_land_in_submission_order_and_leave_no_temporary(tmp_path):
    sync = DeferredSync()
    target = tmp_path / "state.pt"
    for value in range(5):  # each write replaces the last; the newest must win
        atomic_torch_save(target, {"value": torch.tensor(value)}, sync)
    sync.wait()
    assert int(torch.load(target)["value"]) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    sync.close()


def test_a_failed_background_rename_is_raised_and_keeps_the_old_file(tmp_path):
    sync = DeferredSync()
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty directory cannot be replaced by a file
    sync.write(target, lambda f: f.write(b"data"))
    with pytest.raises(OSError):
        sync.wait()
    assert target.is_dir() and [p.name for p in tmp_path.iterdir()] == ["taken"]
    sync.close()


def test_checkpoint_saved_through_deferred_sync_loads_back(tmp_path):
    sync = DeferredSync()
    atomic_write_text(tmp_path / "other.txt", "kept")
    model = {"w": torch.arange(6.0).reshape(2, 3)}
    Checkpoint(task_index=1, step=3, model=model, optimizer={}, scheduler=None, rng={}, progress={"scores": [[0.5]]}
               ).save(tmp_path, sync)
    sync.close()
    loaded = Checkpoint.load(tmp_path)
    assert loaded is not None and loaded.step == 3 and torch.equal(loaded.model["w"], model["w"])
    assert (tmp_path / "other.txt").read_text() == "kept"
