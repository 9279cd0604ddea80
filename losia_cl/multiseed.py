"""``seeds.json``: the file that ties the per-seed run folders of ``losia-cl run --seeds`` together.

``ROOT/seeds.json`` = ``{"format": "losia_cl.seeds/1", "seeds": [0, 1, 2], "runs": ["seed0", "seed1", "seed2"]}``;
each listed folder is a complete run directory.  ``losia-cl report ROOT`` reads the runs it lists (torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from losia_cl.errors import DataError, brief
from losia_cl.names import name_problem
from losia_cl.results import read_json

SEEDS_FILE = "seeds.json"
SEEDS_FORMAT = "losia_cl.seeds/1"


def seeds_record(seeds: list[int]) -> dict[str, Any]:
    """The content of ``seeds.json`` for ``seeds`` (folders ``seed<N>``)."""
    return {"format": SEEDS_FORMAT, "seeds": list(seeds), "runs": [f"seed{s}" for s in seeds]}


def read_seeds_file(file: Path) -> dict[str, Any]:
    """A ``seeds.json``, checked; :class:`DataError` naming the file for anything another tool or a damage left."""
    info = read_json(file)
    if info.get("format") != SEEDS_FORMAT:
        raise DataError(f"{file}: not a seeds file (key 'format' is {brief(info.get('format'))}, "
                        f"expected {SEEDS_FORMAT!r})")
    seeds, runs = info.get("seeds"), info.get("runs")
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise DataError(f"{file}: not a seeds file (key 'seeds' must be a list of integers, got {brief(seeds)})")
    if not isinstance(runs, list) or len(runs) != len(seeds) or any(name_problem(r) for r in runs):
        raise DataError(f"{file}: not a seeds file (key 'runs' must list one folder name per seed, got {brief(runs)})")
    return info


def seed_run_dirs(path: str | Path) -> list[Path]:
    """The finished-or-started run folders a ``seeds.json`` in ``path`` lists ([] when ``path`` has none)."""
    path = Path(path)
    file = path / SEEDS_FILE
    if not file.exists():
        return []
    runs = [path / name for name in read_seeds_file(file)["runs"]]
    return [run for run in runs if (run / "run.json").is_file()]
