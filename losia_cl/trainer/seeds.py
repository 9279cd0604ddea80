"""Several seeds in one command: every method under every seed, one run folder per seed.

Within a seed every method starts from the same model and sees the same examples in the same order (the
batch plan depends only on the seed and the task's position), so the per-seed results of two methods are
paired.  The folders are ``ROOT/seed<N>/`` (each a complete run with its own ``run.json``), and
``ROOT/seeds.json`` lists them so that ``losia-cl report ROOT`` finds them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from losia_cl.errors import ConfigError
from losia_cl.multiseed import SEEDS_FILE, seeds_record
from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.experiment import RunOutcome, run_experiment
from losia_cl.trainer.files import atomic_write_json

def seeds_root(config: RunConfig, seeds: list[int]) -> Path:
    """``--out``, or ``runs/<stream>-<model>-seeds<a>-<b>-...``."""
    if config.out:
        return Path(config.out)
    single = config.out_dir  # runs/<stream>-<model>-seed<seed>
    return single.with_name(single.name.rsplit("-seed", 1)[0] + "-seeds" + "-".join(map(str, seeds)))


def run_seeds(config: RunConfig, seeds: list[int], command: list[str] | None = None) -> list[RunOutcome]:
    """Run ``config`` once per seed into ``ROOT/seed<N>``; returns the outcomes in seed order."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds = {seeds!r} is invalid: give at least one seed, each once")
    root = seeds_root(config, seeds)
    atomic_write_json(root / SEEDS_FILE, seeds_record(seeds))
    return [run_experiment(replace(config, seed=s, out=str(root / f"seed{s}")), command=command) for s in seeds]
