"""``seeds.json``: the file that ties the per-seed run folders of ``losia-cl run --seeds`` together.

``ROOT/seeds.json`` = ``{"format": "losia_cl.seeds/1", "seeds": [0, 1, 2], "runs": ["seed0", "seed1", "seed2"]}``;
each listed folder is a complete run directory.  ``losia-cl report ROOT`` reads the runs it lists (torch-free).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from losia_cl.errors import DataError

SEEDS_FILE = "seeds.json"
SEEDS_FORMAT = "losia_cl.seeds/1"


def seeds_record(seeds: list[int]) -> dict[str, Any]:
    """The content of ``seeds.json`` for ``seeds`` (folders ``seed<N>``)."""
    return {"format": SEEDS_FORMAT, "seeds": list(seeds), "runs": [f"seed{s}" for s in seeds]}


def seed_run_dirs(path: str | Path) -> list[Path]:
    """The finished-or-started run folders a ``seeds.json`` in ``path`` lists ([] when ``path`` has none)."""
    path = Path(path)
    file = path / SEEDS_FILE
    if not file.is_file():
        return []
    try:
        info: Any = json.loads(file.read_text())
        if info.get("format") != SEEDS_FORMAT:
            raise KeyError("format")
        runs = [path / str(name) for name in info["runs"]]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{file}: not a seeds file ({error})") from None
    return [run for run in runs if (run / "run.json").is_file()]
