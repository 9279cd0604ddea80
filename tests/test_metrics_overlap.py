"""SubnetOverlapTracker: exact coverage counts vs brute-force bitmaps, Jaccard identities, chance level."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from losia_cl.errors import ConfigError, DataError
from losia_cl.metrics import SubnetOverlapTracker, chance_jaccard
from losia_cl.metrics import overlap as overlap_mod


def _random_block(rng: np.random.Generator, d_out: int, d_in: int, r: int, c: int):
    return rng.choice(d_out, size=r, replace=False), rng.choice(d_in, size=c, replace=False)


def _bitmap(blocks, d_out: int, d_in: int) -> np.ndarray:
    m = np.zeros((d_out, d_in), dtype=bool)
    for rows, cols in blocks:
        m[np.ix_(np.asarray(rows), np.asarray(cols))] = True
    return m


def test_identical_histories_give_jaccard_one_and_disjoint_give_zero() -> None:
    rng = np.random.default_rng(0)
    history = [_random_block(rng, 40, 30, 5, 4) for _ in range(3)]
    t = SubnetOverlapTracker()
    for block in history:
        t.record("a", {"m": block}, shapes={"m": (40, 30)})
    for block in history:
        t.record("b", {"m": block})
    t.record("c", {"m": (np.arange(30, 40), np.arange(0, 30))})  # rows 30..39 ...
    t.record("d", {"m": (np.arange(0, 5), np.arange(0, 30))})  # ... disjoint from rows 0..4
    s = t.matrix_stats("m")
    assert s["coverage_jaccard"][0][1] == 1.0 and s["coverage_jaccard"][1][0] == 1.0
    assert s["final_rows_jaccard"][0][1] == 1.0 and s["final_cols_jaccard"][0][1] == 1.0
    assert s["coverage_jaccard"][2][3] == 0.0
    assert s["final_rows_jaccard"][2][3] == 0.0
    assert s["final_cols_jaccard"][2][3] == 1.0  # both trained every column
    assert s["blocks"] == [3, 3, 1, 1]
    assert s["coverage"][2] == pytest.approx(10 / 40) and s["coverage"][3] == pytest.approx(5 / 40)


def test_small_case_by_hand() -> None:
    # 4 x 4 matrix; task a trains rows {0,1} x cols {0,1} then rows {1,2} x cols {1,2}:
    #   covered: (0,0) (0,1) (1,0) (1,1) (1,2) (2,1) (2,2)  -> 7 cells
    # task b trains rows {1} x cols {0,1,2,3}: (1,0) (1,1) (1,2) (1,3) -> 4 cells
    # intersection: (1,0) (1,1) (1,2) = 3; union 7 + 4 - 3 = 8 -> J = 3/8
    t = SubnetOverlapTracker()
    t.register("layers.3.q", (4, 4), layer=3)
    t.record("a", {"layers.3.q": ([0, 1], [0, 1])})
    t.record("a", {"layers.3.q": ([1, 2], [1, 2])})
    t.record("b", {"layers.3.q": ([1], [0, 1, 2, 3])})
    s = t.matrix_stats("layers.3.q")
    assert s["layer"] == 3
    assert s["coverage"] == [7 / 16, 4 / 16]
    assert s["coverage_jaccard"][0][1] == pytest.approx(3 / 8)
    assert s["cumulative_coverage"] == [7 / 16, 8 / 16]
    # final rows {1,2} vs {1}: 1/2; final cols {1,2} vs {0,1,2,3}: 2/4
    assert s["final_rows_jaccard"][0][1] == pytest.approx(0.5)
    assert s["final_cols_jaccard"][0][1] == pytest.approx(0.5)
    # chance: E = 7 * 4 / 16 = 1.75; J = 1.75 / (7 + 4 - 1.75)
    assert s["coverage_jaccard_chance"][0][1] == pytest.approx(1.75 / 9.25)
    assert s["coverage_jaccard_ratio"][0][1] == pytest.approx((3 / 8) / (1.75 / 9.25))
    assert s["coverage_jaccard_chance"][0][0] is None


@pytest.mark.parametrize("seed", range(6))
def test_exact_counts_equal_brute_force_bitmaps(seed) -> None:
    rng = np.random.default_rng(seed)
    d_out, d_in = int(rng.integers(5, 70)), int(rng.integers(5, 90))
    t = SubnetOverlapTracker()
    histories: dict[str, list] = {}
    for task in ("t1", "t2", "t3", "t4"):
        n_blocks = int(rng.integers(0, 6))  # a task may train nothing in this matrix
        t.start_task(task)
        histories[task] = []
        for _ in range(n_blocks):
            r, c = int(rng.integers(1, d_out + 1)), int(rng.integers(1, d_in + 1))
            block = _random_block(rng, d_out, d_in, r, c)
            # indices may repeat inside a block and may come as lists
            rows = np.concatenate([block[0], block[0][:2]]).tolist()
            histories[task].append(block)
            t.record(task, {"w": (rows, block[1])}, shapes=(d_out, d_in))
    s = t.matrix_stats("w")
    maps = [_bitmap(histories[k], d_out, d_in) for k in ("t1", "t2", "t3", "t4")]
    cumulative = np.zeros((d_out, d_in), dtype=bool)
    for a in range(4):
        cumulative |= maps[a]
        assert s["coverage"][a] == pytest.approx(maps[a].mean(), abs=1e-15)
        assert s["cumulative_coverage"][a] == pytest.approx(cumulative.mean(), abs=1e-15)
        for b in range(4):
            union = (maps[a] | maps[b]).sum()
            expected = None if not maps[a].any() or not maps[b].any() else (maps[a] & maps[b]).sum() / union
            assert s["coverage_jaccard"][a][b] == (None if expected is None else pytest.approx(expected))


def test_exact_counts_with_many_blocks_and_chunking(monkeypatch) -> None:
    # force bands of a row or two so that the band loop is exercised
    monkeypatch.setattr(overlap_mod, "CHUNK_BYTES", 40)
    rng = np.random.default_rng(7)
    d_out, d_in = 48, 64
    t = SubnetOverlapTracker()
    hist = {"a": [], "b": []}
    for task in hist:
        for _ in range(12):
            block = _random_block(rng, d_out, d_in, 6, 8)
            hist[task].append(block)
            t.record(task, {"w": block}, shapes=(d_out, d_in))
    s = t.matrix_stats("w")
    ma, mb = _bitmap(hist["a"], d_out, d_in), _bitmap(hist["b"], d_out, d_in)
    assert s["coverage_jaccard"][0][1] == pytest.approx((ma & mb).sum() / (ma | mb).sum())
    assert s["cumulative_coverage"][1] == pytest.approx((ma | mb).mean())


def test_chance_formula_for_single_blocks() -> None:
    # (|R|^2 / d_out) (|C|^2 / d_in) = (16^2/64)(24^2/96) = 4 * 6 = 24 expected shared entries
    size = 16 * 24
    assert chance_jaccard(size, size, 64 * 96) == pytest.approx(24 / (2 * size - 24))
    assert chance_jaccard(0, 0, 10) is None
    with pytest.raises(ConfigError):
        chance_jaccard(1, 1, 0)


def test_random_blocks_overlap_at_chance_level() -> None:
    # Monte Carlo over 400 seeds of two random 16x24 blocks in a 64x96 matrix.
    # The mean intersection must match the analytic 24 within 4 standard errors, and the mean Jaccard
    # must be within 5% of the chance Jaccard (a ratio of expectations, so not exactly the mean ratio:
    # the Jensen gap here is about 3%).
    d_out, d_in, r, c = 64, 96, 16, 24
    inters, jacs = [], []
    t = SubnetOverlapTracker()
    for seed in range(400):
        rng = np.random.default_rng(seed)
        a, b = _random_block(rng, d_out, d_in, r, c), _random_block(rng, d_out, d_in, r, c)
        inters.append(len(np.intersect1d(a[0], b[0])) * len(np.intersect1d(a[1], b[1])))
        if seed < 100:  # through the tracker too (fewer: it is the slower path)
            t.record(f"a{seed}", {f"m{seed}": a}, shapes=(d_out, d_in))
            t.record(f"b{seed}", {f"m{seed}": b})
        jacs.append(inters[-1] / (2 * r * c - inters[-1]))
    inters_arr = np.array(inters, dtype=float)
    sem = inters_arr.std(ddof=1) / np.sqrt(len(inters_arr))
    assert abs(inters_arr.mean() - 24.0) < 4 * sem
    chance = chance_jaccard(r * c, r * c, d_out * d_in)
    assert np.mean(jacs) == pytest.approx(chance, rel=0.05)
    # the tracker reports the same Jaccards and the analytic chance value for those pairs
    tracked = [t.matrix_stats(f"m{s}") for s in range(3)]
    for s, st_ in enumerate(tracked):
        assert st_["coverage_jaccard"][2 * s][2 * s + 1] == pytest.approx(jacs[s])
        assert st_["coverage_jaccard_chance"][2 * s][2 * s + 1] == pytest.approx(chance)


def test_union_chance_matches_monte_carlo_for_multi_block_coverages() -> None:
    # E|A ∩ B| = |A||B|/N for B with randomly relabelled rows and columns: check the mean of
    # |A ∩ B| / (|A||B|/N) over random 3-block coverages is 1 within 4 standard errors.
    d_out, d_in = 32, 40
    ratios = []
    for seed in range(300):
        rng = np.random.default_rng(1000 + seed)
        a = _bitmap([_random_block(rng, d_out, d_in, 5, 6) for _ in range(3)], d_out, d_in)
        b = _bitmap([_random_block(rng, d_out, d_in, 5, 6) for _ in range(3)], d_out, d_in)
        ratios.append((a & b).sum() / (a.sum() * b.sum() / (d_out * d_in)))
    ratios_arr = np.array(ratios)
    assert abs(ratios_arr.mean() - 1.0) < 4 * ratios_arr.std(ddof=1) / np.sqrt(len(ratios_arr))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 30), st.integers(2, 30))
def test_jaccard_is_symmetric_and_in_unit_interval(seed, d_out, d_in) -> None:
    rng = np.random.default_rng(seed)
    t = SubnetOverlapTracker()
    for task in range(3):
        for _ in range(int(rng.integers(1, 4))):
            block = _random_block(rng, d_out, d_in, int(rng.integers(1, d_out + 1)), int(rng.integers(1, d_in + 1)))
            t.record(task, {"w": block}, shapes=(d_out, d_in))
    s = t.matrix_stats("w")
    for key in ("coverage_jaccard", "final_rows_jaccard", "final_cols_jaccard"):
        m = np.array(s[key], dtype=float)
        assert np.allclose(m, m.T) and (m >= 0).all() and (m <= 1 + 1e-12).all()
        assert np.allclose(np.diag(m), 1.0)
    assert all(0 < c <= 1 for c in s["cumulative_coverage"])
    assert s["cumulative_coverage"] == sorted(s["cumulative_coverage"])


def _two_layer_tracker() -> SubnetOverlapTracker:
    rng = np.random.default_rng(3)
    t = SubnetOverlapTracker()
    names = {"model.layers.0.self_attn.q_proj": (24, 24), "model.layers.0.mlp.up_proj": (48, 24),
             "model.layers.1.self_attn.q_proj": (24, 24), "lm_head": (30, 24)}
    layers = {"model.layers.0.self_attn.q_proj": 0, "model.layers.0.mlp.up_proj": 0,
              "model.layers.1.self_attn.q_proj": 1, "lm_head": 99}
    for task in ("t1", "t2"):
        for _ in range(3):
            subnets = {n: _random_block(rng, *shape, shape[0] // 4, shape[1] // 4) for n, shape in names.items()}
            t.record(task, subnets, shapes=names, layers=layers)
    return t


def test_summary_aggregates_and_is_json() -> None:
    t = _two_layer_tracker()
    summary = t.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["tasks"] == ["t1", "t2"] and summary["num_matrices"] == 4
    assert set(summary["per_layer"]) == {"0", "1", "99"}
    assert summary["per_layer"]["0"]["matrices"] == 2
    stats = summary["per_matrix"]
    mean_j = np.mean([s["coverage_jaccard"][0][1] for s in stats.values()])
    assert summary["coverage_jaccard"][0][1] == pytest.approx(mean_j)
    layer0 = [stats["model.layers.0.self_attn.q_proj"], stats["model.layers.0.mlp.up_proj"]]
    assert summary["per_layer"]["0"]["mean_jaccard"] == pytest.approx(np.mean([s["mean_jaccard"] for s in layer0]))
    entries = sum(s["shape"][0] * s["shape"][1] for s in stats.values())
    covered = sum(s["cumulative_coverage"][1] * s["shape"][0] * s["shape"][1] for s in stats.values())
    assert summary["cumulative_coverage_entries"][1] == pytest.approx(covered / entries)
    assert "per_matrix" not in t.summary(per_matrix=False)


def test_to_dict_round_trip_is_json_and_lossless() -> None:
    t = _two_layer_tracker()
    state = json.loads(json.dumps(t.to_dict()))
    back = SubnetOverlapTracker.from_dict(state)
    assert back.summary() == t.summary()
    assert back.to_dict() == state
    # recording continues after a restore
    back.record("t3", {"lm_head": ([0], [0])})
    assert back.tasks == ["t1", "t2", "t3"]
    broken = json.loads(json.dumps(state))
    broken["matrices"]["lm_head"]["blocks"]["t1"]["rows"][0] = "AAAA"
    with pytest.raises(DataError, match="lm_head"):
        SubnetOverlapTracker.from_dict(broken)
    with pytest.raises(DataError, match="not a"):
        SubnetOverlapTracker.from_dict({"format": "something else"})


def test_memory_holds_packed_blocks_not_matrices() -> None:
    t = SubnetOverlapTracker()
    rng = np.random.default_rng(0)
    for task in range(3):
        for _ in range(5):
            t.record(task, {"big": _random_block(rng, 4096, 11008, 512, 1376)}, shapes=(4096, 11008))
    tb = t._matrices["big"].tasks["0"]
    assert sum(r.nbytes + c.nbytes for r, c in zip(tb.rows, tb.cols)) == 5 * (4096 + 11008) // 8
    s = t.matrix_stats("big")  # exact counts on a 7B-sized matrix stay cheap
    expected = chance_jaccard(s["coverage"][0] * 4096 * 11008, s["coverage"][1] * 4096 * 11008, 4096 * 11008)
    assert s["coverage_jaccard_chance"][0][1] == pytest.approx(expected)
    assert s["coverage_jaccard_ratio"][0][1] == pytest.approx(1.0, abs=0.1)


def test_input_validation() -> None:
    t = SubnetOverlapTracker()
    with pytest.raises(ConfigError, match="shape .* is unknown"):
        t.record("a", {"w": ([0], [0])})
    with pytest.raises(DataError, match=r"rows: indices must lie in \[0, 4\)"):
        t.record("a", {"w": ([4], [0])}, shapes=(4, 4))
    with pytest.raises(DataError, match="empty"):
        t.record("a", {"w": ([], [0])})
    with pytest.raises(DataError, match="integers"):
        t.record("a", {"w": ([0.5], [0])})
    with pytest.raises(ConfigError, match="differs from the registered"):
        t.record("a", {"w": ([0], [0])}, shapes=(5, 4))
    with pytest.raises(ConfigError, match="positive ints"):
        t.register("v", (0, 3))
    with pytest.raises(DataError, match="no matrix 'nope'"):
        t.matrix_stats("nope")


def test_accepts_torch_index_tensors() -> None:
    torch = pytest.importorskip("torch")
    t = SubnetOverlapTracker()
    t.record("a", {"w": (torch.tensor([0, 1]), torch.tensor([2]))}, shapes=(3, 3))
    t.record("b", {"w": (np.array([1]), [2])})
    assert t.matrix_stats("w")["coverage_jaccard"][0][1] == pytest.approx(0.5)
