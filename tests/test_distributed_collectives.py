"""The collectives of the data-parallel trainer in two real gloo processes.

One spawn runs every check (starting processes is the slow part); each test asserts one property
of what the ranks returned.
"""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest
import torch

from losia_cl.distributed import DistContext, spawn

pytestmark = pytest.mark.slow  # two fresh processes import torch and transformers


def _model(seed: int):
    from conftest import make_tiny_llama

    return make_tiny_llama(seed=seed)


def _random_grads(model, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)


def _thread_names() -> list[str] | None:
    """Names of this process's native threads (None where /proc is missing)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    return sorted((task / "comm").read_text().strip() for task in tasks.iterdir())


def _write_thread_names(path: Path) -> None:
    names = _thread_names()
    path.write_text("" if names is None else "\n".join(names))


def _checks(ctx: DistContext, folder: str) -> dict:
    """Everything the tests below look at, computed on one rank."""
    from dataclasses import replace

    from losia_cl.bench import BenchConfig, create_bench_method
    from losia_cl.distributed.reduce import GradientReducer, losia_blocks
    from losia_cl.distributed.verify import check_identical
    from losia_cl.errors import ConfigError
    from losia_cl.methods import TaskContext

    out: dict = {"rank": ctx.rank}
    # 0. the threads left once the process group is torn down (written at interpreter exit)
    atexit.register(_write_thread_names, Path(folder) / f"threads{ctx.rank}.txt")
    # 1. dense gradients: summed over the ranks, in small buckets
    model = _model(0)
    _random_grads(model, seed=10 + ctx.rank)
    out["local_grads"] = [p.grad.clone() for p in model.parameters()]
    reducer = GradientReducer(ctx, bucket_bytes=64 * 1024)
    out["dense_bytes"] = reducer(model.parameters())
    out["reduced_grads"] = [p.grad.clone() for p in model.parameters()]
    # 2. plain LoSiA: only the subnet blocks of the matrices that do not record travel
    method = create_bench_method("losia", BenchConfig(rank_factor=0.25))  # the plain (masking) LoSiA path
    method = replace(method, period=2, losia_options={**method.losia_options, "init": "random"})
    context = TaskContext(task_index=0, num_tasks=1, num_training_steps=10, seed=0)
    model = method.prepare(_model(0), context)
    optimizer, _ = method.build_optimizer(model, context)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(20 + ctx.rank))
    model(input_ids=ids, labels=ids).loss.backward()
    trained = [p for p in model.parameters() if p.grad is not None]
    local = [p.grad.clone() for p in trained]
    everyone = ctx.gather_objects(local)
    out["losia_expected"] = [sum(grads[i] for grads in everyone) for i in range(len(local))]
    out["losia_bytes"] = reducer(trained, losia_blocks(optimizer))
    out["losia_full_bytes"] = sum(g.numel() * g.element_size() for g in local)
    out["losia_reduced"] = [p.grad.clone() for p in trained]
    optimizer.close()
    # 3. decisions taken on rank 0 reach every rank, errors too
    out["decided"] = ctx.decide(lambda: f"rank {ctx.rank} decided")

    def refuse():
        raise ConfigError("--resume: refused on rank 0")

    try:
        ctx.decide(refuse)
    except ConfigError as error:
        out["decide_error"] = str(error)
    # 4. the debug check passes on equal tensors and names the first difference
    out["same_checked"] = check_identical(ctx, {"a": torch.arange(4), "b": (torch.ones(2), torch.zeros(3))}, "subnets")
    try:
        check_identical(ctx, {"a": torch.arange(4), "b": torch.tensor([ctx.rank])}, "subnets after step 3")
    except RuntimeError as error:
        out["mismatch"] = str(error)
    out["sum"] = ctx.sum_float(0.25 * (ctx.rank + 1))
    out["max"] = ctx.max_int(7 * ctx.rank)
    out["shard"] = ctx.shard(list(range(5)))
    out["threads"] = _thread_names()
    return out


@pytest.fixture(scope="module")
def exit_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exit")


@pytest.fixture(scope="module")
def ranks(exit_folder):
    return spawn(_checks, 2, str(exit_folder))


def test_the_process_group_is_gone_before_exit(ranks, exit_folder):
    """Transformers (imported by the checks after the group exists) must not keep gloo's threads alive
    past the teardown: destroyed at interpreter exit instead, they can abort the process."""
    if ranks[0]["threads"] is None:
        pytest.skip("no /proc/self/task here")
    for rank in ranks:
        assert any("gloo" in name for name in rank["threads"])  # while the group exists
    for r in range(2):
        left = (exit_folder / f"threads{r}.txt").read_text().split()
        assert not [name for name in left if "gloo" in name]


def test_dense_gradients_are_summed_over_the_ranks(ranks):
    expected = [a + b for a, b in zip(ranks[0]["local_grads"], ranks[1]["local_grads"])]
    for rank in ranks:
        for got, want in zip(rank["reduced_grads"], expected):
            torch.testing.assert_close(got, want)
    total = sum(g.numel() * 4 for g in ranks[0]["local_grads"])
    assert ranks[0]["dense_bytes"] == total


def test_losia_sends_subnet_blocks_and_gets_the_full_sum(ranks):
    for rank in ranks:
        for got, want in zip(rank["losia_reduced"], rank["losia_expected"]):
            torch.testing.assert_close(got, want)
    # at step 0 only the first layer records: the other layer's matrices travel as 1/4 x 1/4 blocks
    assert ranks[0]["losia_bytes"] < 0.7 * ranks[0]["losia_full_bytes"]


def test_rank_zero_decides_for_everyone(ranks):
    assert [r["decided"] for r in ranks] == ["rank 0 decided", "rank 0 decided"]
    assert [r["decide_error"] for r in ranks] == ["--resume: refused on rank 0"] * 2


def test_identity_check_passes_and_names_the_difference(ranks):
    assert [r["same_checked"] for r in ranks] == [2, 2]
    assert [r["mismatch"] for r in ranks] == ["subnets after step 3: rank 1 differs from rank 0 at 'b' (1 of 2 differ)"] * 2


def test_small_collectives(ranks):
    assert [r["sum"] for r in ranks] == [0.75, 0.75]
    assert [r["max"] for r in ranks] == [7, 7]
    assert [r["shard"] for r in ranks] == [[0, 2, 4], [1, 3]]
