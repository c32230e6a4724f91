"""Batching for truncated BPTT (streams) and stateless windows: no token lost or repeated."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.batching import IGNORE_INDEX, StreamBatches, WindowBatches
from rnnkit.errors import UserError

sizes = st.integers(min_value=2, max_value=400)


# ---- streams ----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(sizes, st.integers(1, 12), st.integers(1, 20), st.booleans())
def test_stream_predicts_every_target_exactly_once_with_rows_that_continue(n, B, bptt, pad):
    if n - 1 < B:
        return
    sb = StreamBatches(torch.arange(n), B, bptt, pad=pad)  # token value = its position
    targets, prev = [], None
    for i, (x, y) in enumerate(sb):
        assert x.shape == y.shape and y.shape[1] == B and 1 <= y.shape[0] <= bptt
        assert i == len(sb) - 1 or y.shape[0] == bptt  # only the last batch is shorter
        real = y != IGNORE_INDEX
        assert torch.equal(y[real], x[real] + 1)  # each target is the token after its input
        targets += y[real].tolist()
        if prev is not None:  # row b of batch i+1 continues row b of batch i
            first = x[0]
            assert torch.equal(first[real[0]], prev[-1][real[0]] + 1)
        prev = x
    assert sorted(targets) == list(range(1, n - sb.dropped))  # each exactly once, in order
    assert sb.n_targets == len(targets)
    assert sb.dropped == (0 if pad else (n - 1) % B) and sb.dropped < B
    last_x, last_y = sb.batch(len(sb) - 1)  # direct access gives what iteration gave
    assert torch.equal(last_x, x) and torch.equal(last_y, y)


def test_stream_layout_matches_the_classic_batchify():
    ids = torch.randint(0, 50, (103,))
    sb = StreamBatches(ids, batch_size=4, bptt=7)
    L = 102 // 4
    x = torch.cat([x for x, _ in sb])
    y = torch.cat([y for _, y in sb])
    rows = torch.stack([ids[b * L:b * L + L + 1] for b in range(4)], 1)
    assert torch.equal(x, rows[:-1]) and torch.equal(y, rows[1:])
    assert len(sb) == -(-L // 7) and sb.dropped == 2


def test_carried_state_over_batches_equals_one_pass_over_the_rows():
    """What the layout is for: carrying h across batches is running each row in one go."""
    torch.manual_seed(0)
    ids = torch.randint(0, 10, (200,))
    emb, rnn = torch.nn.Embedding(10, 4), torch.nn.GRU(4, 6)
    sb = StreamBatches(ids, batch_size=3, bptt=9, pad=True)
    h, outs = None, []
    for x, _ in sb:
        out, h = rnn(emb(x), h)
        outs.append(out)
    full, _ = rnn(emb(sb.stream[:-1].clamp_min(0)))
    torch.testing.assert_close(torch.cat(outs), full)


def test_stream_too_short_says_how_long_and_what_to_lower():
    with pytest.raises(UserError, match=r"10 tokens long.*--batch-size to at most 9"):
        StreamBatches(torch.arange(10), batch_size=16, bptt=5)
    with pytest.raises(IndexError):
        StreamBatches(torch.arange(10), batch_size=2, bptt=5).batch(1)
    with pytest.raises(ValueError):
        StreamBatches(torch.arange(10), batch_size=0, bptt=5)
    with pytest.raises(TypeError):
        StreamBatches(torch.rand(10), batch_size=2, bptt=5)


# ---- windows ----------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(sizes, st.integers(1, 8), st.integers(1, 30), st.integers(0, 2**31), st.booleans())
def test_windows_cover_each_window_once_per_epoch_deterministically(n, B, T, seed, drop_last):
    nw = (n - 1) // T
    if nw < 1 or (drop_last and nw < B):
        return
    wb = WindowBatches(torch.arange(n), B, T, seed=seed, drop_last=drop_last)
    again = WindowBatches(torch.arange(n), B, T, seed=seed, drop_last=drop_last)
    for epoch in (0, 1):
        starts = []
        for i in reversed(range(len(wb))):  # any order: batch i depends on (seed, epoch) only
            x, y = wb.batch(i, epoch)
            assert x.shape == y.shape == (T, x.shape[1]) and x.shape[1] <= B
            assert torch.equal(y, x + 1) and torch.equal(x[1:], x[:-1] + 1)
            assert all(torch.equal(a, b) for a, b in zip((x, y), again.batch(i, epoch)))
            starts += x[0].tolist()
        offset = min(starts) % T
        assert offset <= (n - 1) - nw * T and all(s % T == offset for s in starts)
        assert len(set(starts)) == len(starts) == (nw // B * B if drop_last else nw)


def test_window_order_changes_with_epoch_and_seed():
    ids = torch.arange(1000)
    wb = WindowBatches(ids, batch_size=4, seq_len=10, seed=1)
    first = [wb.batch(0, e)[0][0].tolist() for e in range(3)]
    assert first[0] != first[1] != first[2]
    assert WindowBatches(ids, 4, 10, seed=2).batch(0, 0)[0][0].tolist() != first[0]
    wb.set_epoch(2)
    assert next(iter(wb))[0][0].tolist() == first[2]
    assert len(list(wb.epoch_batches(0))) == len(wb) == 25


def test_windows_too_short_says_how_long_and_what_to_lower():
    with pytest.raises(UserError, match=r"20 tokens long.*--seq-len to at most 19"):
        WindowBatches(torch.arange(20), batch_size=2, seq_len=50)
    with pytest.raises(UserError, match="lower --batch-size or --seq-len"):
        WindowBatches(torch.arange(20), batch_size=8, seq_len=5, drop_last=True)
    small = WindowBatches(torch.arange(20), batch_size=8, seq_len=5)
    assert len(small) == 1 and small.batch(0)[0].shape == (5, 3)
