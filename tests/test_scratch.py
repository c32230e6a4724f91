"""The bptt backward's reused scratch buffers never leak into what autograd gets back."""

import pytest
import torch

import rnnkit
from rnnkit.cells import scratch


@pytest.mark.parametrize("cell", ["lstm", "lstm_peephole", "gru", "mut1"])
def test_gradients_survive_the_next_backward(cell):
    """A second backward (other inputs, same shapes: the same buffers handed out again) leaves
    the first call's gradients as they were."""
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell, 5, 6, backend="bptt")
    x1, x2 = torch.randn(7, 3, 5, requires_grad=True), torch.randn(7, 3, 5, requires_grad=True)
    g1 = torch.autograd.grad(layer(x1)[0].square().sum(), [x1, *layer.parameters()])
    kept = [g.clone() for g in g1]
    torch.autograd.grad(layer(x2)[0].sum(), [x2, *layer.parameters()])
    for a, b in zip(g1, kept):
        assert torch.equal(a, b)


def test_a_buffer_is_handed_out_again_only_after_its_session():
    like = torch.zeros(1)
    with scratch.session():
        a = scratch.empty((4, 5), like)
        b = scratch.empty((4, 5), like)
        assert a.data_ptr() != b.data_ptr()
    with scratch.session():
        c = scratch.empty((2, 10), like)
        assert c.data_ptr() in (a.data_ptr(), b.data_ptr())
    assert scratch.empty((3,), like).shape == (3,)  # outside a session: a fresh tensor


def test_the_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(scratch, "MAX_BYTES", 1000)
    scratch.clear()
    with scratch.session():
        for _ in range(5):
            scratch.empty((100,), torch.zeros(1))  # 400 bytes each
    assert sum(b.numel() * 4 for b in scratch._pool()) <= 1000
    scratch.clear()
