"""Splitting one optimizer step across ranks: every example once, and the same loss and gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import make_tiny_llama
from losia_cl.distributed.sharding import answer_tokens, piece_loss, shard_step
from losia_cl.streams.tokenization import collate_for_training
from losia_cl.trainer.loss import answer_loss


@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5), world=st.integers(1, 5))
def test_every_example_goes_to_exactly_one_rank_in_order(sizes, world):
    start, micro_batches = 0, []
    for size in sizes:
        micro_batches.append(list(range(start, start + size)))
        start += size
    total = sum(sizes)
    seen, per_rank = [], []
    for rank in range(world):
        pieces = shard_step(micro_batches, rank, world)
        real = [p for p in pieces if p.weight]
        per_rank.append(sum(len(p.indices) for p in real))
        for piece in pieces:
            assert set(piece.indices) <= set(micro_batches[piece.micro])  # never crosses a micro-batch
            assert piece.whole == (list(piece.indices) == micro_batches[piece.micro])
        seen.extend(i for p in real for i in p.indices)
        assert pieces  # a rank without examples still runs one (weight 0)
    assert seen == list(range(total))
    assert max(per_rank) - min(per_rank) <= 1


def test_whole_micro_batches_when_the_world_divides_them():
    micro_batches = [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [p.indices for p in shard_step(micro_batches, 0, 2)] == [(0, 1), (2, 3)]
    assert [p.indices for p in shard_step(micro_batches, 1, 2)] == [(4, 5), (6, 7)]
    assert all(p.whole for r in range(2) for p in shard_step(micro_batches, r, 2))
    # one micro-batch, two ranks: halves of it
    halves = [shard_step([[0, 1, 2]], r, 2) for r in range(2)]
    assert [[p.indices for p in h] for h in halves] == [[(0, 1)], [(2,)]]
    assert not any(p.whole for h in halves for p in h)


def _features(seed: int, count: int):
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        length = int(torch.randint(6, 14, (1,), generator=generator))
        prompt = int(torch.randint(2, length - 1, (1,), generator=generator))
        ids = torch.randint(0, 128, (length,), generator=generator).tolist()
        out.append({"input_ids": ids, "attention_mask": [1] * length, "labels": [-100] * prompt + ids[prompt:]})
    return out


@pytest.mark.parametrize(("micro_batches", "world"), [
    ([[0, 1, 2, 3]], 2),  # one micro-batch split in two
    ([[0, 1, 2], [3, 4, 5], [6, 7]], 2),  # unequal micro-batches, a piece crosses none
    ([[0, 1], [2, 3]], 3),  # uneven split
    ([[0]], 2),  # a rank without examples
])
def test_pieces_sum_to_the_one_process_loss_and_gradient(micro_batches, world):
    features = _features(3, 1 + max(i for m in micro_batches for i in m))
    model = make_tiny_llama()
    params = [p for p in model.parameters()]
    # the one-process step
    expected_loss = 0.0
    for micro in micro_batches:
        loss = answer_loss(model, collate_for_training([features[i] for i in micro], pad_token_id=0)) / len(micro_batches)
        loss.backward()
        expected_loss += loss.item()
    expected = [p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)
    # every rank's pieces, summed as the all-reduce would
    tokens = [sum(answer_tokens(features[i]) for i in micro) for micro in micro_batches]
    total_loss = 0.0
    for rank in range(world):
        for piece in shard_step(micro_batches, rank, world):
            batch = collate_for_training([features[i] for i in piece.indices], pad_token_id=0)
            loss = piece_loss(model, batch, piece, len(micro_batches), tokens[piece.micro])
            loss.backward()
            total_loss += loss.item()
    assert total_loss == pytest.approx(expected_loss, rel=1e-6)
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
