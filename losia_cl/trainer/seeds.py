"""Several seeds in one command: every method under every seed, one run folder per seed.

Within a seed every method starts from the same model and sees the same examples in the same order (the
batch plan depends only on the seed and the task's position), so the per-seed results of two methods are
paired.  The folders are ``ROOT/seed<N>/`` (each a complete run with its own ``run.json``), and
``ROOT/seeds.json`` lists them so that ``losia-cl report ROOT`` finds them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from losia_cl.distributed.context import env_world_size
from losia_cl.errors import ConfigError
from losia_cl.multiseed import SEEDS_FILE, read_seeds_file, seeds_record
from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.experiment import (RunOutcome, check_budget, check_run_folder, load_run_stream, resolve_device,
                                         run_experiment)
from losia_cl.trainer.files import atomic_write_json
from losia_cl.trainer.run_folder import check_seeds_folder


def seeds_root(config: RunConfig, seeds: list[int]) -> Path:
    """``--out``, or ``runs/<stream>-<model>-seeds<a>-<b>-...``."""
    if config.out:
        return Path(config.out)
    single = config.out_dir  # runs/<stream>-<model>-seed<seed>
    return single.with_name(single.name.rsplit("-seed", 1)[0] + "-seeds" + "-".join(map(str, seeds)))


def seed_configs(config: RunConfig, seeds: list[int]) -> tuple[Path, list[RunConfig]]:
    """The parent folder and every seed's run configuration, the whole plan checked before anything is written.

    Every seed must be valid, the parent folder must be new, empty or a seeds folder of ours
    (:func:`~losia_cl.trainer.run_folder.check_seeds_folder`), and every seed's run must pass the checks of a
    single run (its stream, budget, device and run folder).
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds = {seeds!r} is invalid: give at least one seed, each once")
    if config.from_run and len(seeds) > 1:
        raise ConfigError("--from continues one run folder, --seeds runs several: continue each seed's run folder "
                          "(OUT/seed<N>) in its own run")
    root = seeds_root(config, seeds)
    configs = [replace(config, seed=s, out=str(root / f"seed{s}")) for s in seeds]  # each validates its seed
    check_seeds_folder(root, seeds, resume=config.resume)
    resolve_device(config.device)
    for each in configs:
        check_budget(each, load_run_stream(each))
        check_run_folder(each, env_world_size())
    return root, configs


def run_seeds(config: RunConfig, seeds: list[int], command: list[str] | None = None) -> list[RunOutcome]:
    """Run ``config`` once per seed into ``ROOT/seed<N>``; returns the outcomes in seed order.

    ``ROOT/seeds.json`` is written when the first seed's run starts writing (after its model loaded).
    """
    root, configs = seed_configs(config, seeds)
    file = root / SEEDS_FILE

    def write_seeds_file() -> None:
        if not file.exists() or read_seeds_file(file)["seeds"] != list(seeds):
            atomic_write_json(file, seeds_record(seeds), root=root)

    return [run_experiment(each, command=command, before_first_write=write_seeds_file) for each in configs]
