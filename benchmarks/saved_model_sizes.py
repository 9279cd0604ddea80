"""Size of the saved models of a finished run against a delta from the base model (docs/saved-models.md).

    python benchmarks/saved_model_sizes.py RUN_DIR

For every method whose saved model is a whole ``transformers`` folder it loads the base model (run.json's
``model`` and ``seed``) and the saved one and prints, over all tensors: the entries that changed, the saved
``model.safetensors`` size, and two delta encodings a loader would add to the base model: the rectangle of the
changed rows x changed columns of each matrix (dense values + int32 row/column indices), and the changed
entries alone (values + int32 flat indices), and how long saving the folder takes.  For a peft adapter it prints the adapter file's size.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from losia_cl.models import load_model
from losia_cl.trainer.saved_models import SavedModel, save_model


def _delta_sizes(base: dict[str, torch.Tensor], trained: dict[str, torch.Tensor]) -> dict[str, int]:
    changed = total = rect = sparse = 0
    for name, new in trained.items():
        old = base[name]
        diff = new != old
        n = int(diff.sum())
        item = new.element_size()
        total += new.numel()
        changed += n
        sparse += n * (item + 4)
        if new.dim() == 2:
            rows = int(diff.any(dim=1).sum())
            cols = int(diff.any(dim=0).sum())
            rect += rows * cols * item + (rows + cols) * 4
        else:
            rect += n * (item + 4)
    return {"entries": total, "changed": changed, "rect_bytes": rect, "sparse_bytes": sparse}


def main(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    base_model, _ = load_model(run["model"], seed=run["seed"], dtype=run["config"].get("dtype", "float32"))
    base = {k: v.detach() for k, v in base_model.state_dict().items()}
    for method in run["methods"]:
        if not (run_dir / method / "results.json").exists():  # unfinished
            continue
        results = json.loads((run_dir / method / "results.json").read_text())
        folder = run_dir / method / results["saved_models"]["final"]
        saved = SavedModel.read(folder)
        files = {p.name: p.stat().st_size for p in folder.iterdir() if p.suffix == ".safetensors"}
        if saved.kind == "peft":
            print(f"{method}: peft adapter, {sum(files.values()):,} bytes")
            continue
        model, tokenizer = load_model(str(folder), dtype="auto")
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            save_model(model, tokenizer, Path(scratch) / "model", replace(saved), root=Path(scratch))
            seconds = time.perf_counter() - started
        sizes = _delta_sizes(base, {k: v.detach() for k, v in model.state_dict().items()})
        print(f"{method}: model.safetensors {sum(files.values()):,} bytes; changed entries {sizes['changed']:,} of "
              f"{sizes['entries']:,} ({sizes['changed'] / sizes['entries']:.1%}); delta as changed rows x cols "
              f"{sizes['rect_bytes']:,} bytes, as changed entries {sizes['sparse_bytes']:,} bytes; saving it took {seconds:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
