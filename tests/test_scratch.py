"""The engine's reused buffers are never handed out while anything still holds them."""

import pytest
import torch

import rnnkit
from rnnkit.cells import scratch


@pytest.mark.parametrize("cell", ["lstm", "lstm_peephole", "gru", "mut1", "rnn_tanh"])
@pytest.mark.parametrize("recompute", [True, None])
def test_results_survive_the_next_calls(cell, recompute):
    """Outputs, final states and gradients of one call are untouched by later calls of the
    same shapes (the same buffers asked for again), with the first graph still alive."""
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell, 5, 6, backend="auto" if cell == "lstm_peephole" else "bptt",
                             recompute=recompute)
    x1, x2 = torch.randn(7, 3, 5, requires_grad=True), torch.randn(7, 3, 5, requires_grad=True)
    out1, h1 = layer(x1)
    kept = (out1.clone(), *(h.clone() for h in (h1 if isinstance(h1, tuple) else (h1,))))
    out2, _ = layer(x2)  # a second graph while the first is alive
    g1 = torch.autograd.grad(out1.square().sum(), [x1, *layer.parameters()], retain_graph=True)
    g1_kept = [g.clone() for g in g1]
    torch.autograd.grad(out2.sum(), [x2, *layer.parameters()])
    out3, _ = layer(x2)  # and a third call after that backward
    torch.autograd.grad(out3.sum(), [x2, *layer.parameters()])
    assert torch.equal(out1, kept[0])
    for a, b in zip(h1 if isinstance(h1, tuple) else (h1,), kept[1:]):
        assert torch.equal(a, b)
    for a, b in zip(g1, g1_kept):
        assert torch.equal(a, b)
    g1_again = torch.autograd.grad(out1.square().sum(), [x1, *layer.parameters()])  # retained
    for a, b in zip(g1_again, g1_kept):
        assert torch.equal(a, b)


def test_training_after_inference_mode():
    """Buffers made under torch.inference_mode are not handed to a call autograd records."""
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("mut2", 5, 5, backend="bptt")
    x = torch.randn(4, 2, 5)
    with torch.inference_mode():
        ref = layer(x)[0]
    out = layer(x)[0]
    torch.autograd.grad(out.sum(), list(layer.parameters()))
    torch.testing.assert_close(out, ref)


def test_a_buffer_is_handed_out_again_only_when_nothing_holds_it():
    like = torch.zeros(1)
    a = scratch.empty((4, 5), like)
    view = a[1:]
    b = scratch.empty((4, 5), like)
    assert a.data_ptr() != b.data_ptr()
    del a
    c = scratch.empty((2, 10), like)
    assert c.data_ptr() not in (view.data_ptr() - 5 * 4, b.data_ptr())  # the view holds a's
    del view
    assert scratch.empty((20,), like).data_ptr() not in (b.data_ptr(), c.data_ptr())


def test_the_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(scratch, "MAX_BYTES", 1000)
    scratch.clear()
    for n in range(1, 6):
        scratch.empty((100 + n,), torch.zeros(1))  # about 400 bytes each
    assert sum(b.numel() * 4 for b in scratch._pool()) <= 1000
    scratch.clear()
