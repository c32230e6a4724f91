"""MUT1-3 on the bptt engine: float32 (the oneDNN products) against autograd, x itself with and
without its projection, and the memory the buffered path keeps."""

import pytest
import torch

import rnnkit
from rnnkit.bench.core import _output
from rnnkit.bench.timing import saved_tensor_bytes

T, B, H = 200, 4, 16


@pytest.mark.parametrize("cell", ["mut1", "mut2", "mut3"])
# == H: x itself;  != H: W_xproj x (MUT1/2); 40: MUT1 keeps no gate with recompute (I > 2H)
@pytest.mark.parametrize("input_size", [16, 5, 40])
def test_bptt_matches_autograd_in_float32(cell, input_size):
    torch.manual_seed(0)
    ref = rnnkit.Recurrent(cell, input_size, H, num_layers=2, backend="autograd")
    bptt = rnnkit.Recurrent(cell, input_size, H, num_layers=2, backend="bptt")
    bptt.load_state_dict(ref.state_dict())
    x = torch.randn(30, 3, input_size)
    results = []
    for model in (ref, bptt):
        xi = x.clone().requires_grad_()  # layer 1's dx: x itself and W_xproj's backward
        out = _output(model, xi)
        grads = torch.autograd.grad(out.square().sum(), [xi, *model.parameters()])
        results.append((out, grads))
    (o1, g1), (o2, g2) = results
    torch.testing.assert_close(o2, o1, atol=1e-5, rtol=1e-4)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", ["mut1", "mut2", "mut3"])
def test_bptt_keeps_at_most_half_and_only_the_blocks_it_names(cell):
    """At most half the autograd loop's saved bytes, and doubling T adds only x, h and the
    gate blocks ``recompute_keeps`` names per step (MUT1 r, MUT2 n, MUT3 z and n): the other
    gates are recomputed in the backward."""
    torch.manual_seed(0)
    I = 8
    bptt = rnnkit.Recurrent(cell, I, H, backend="bptt")
    loop = rnnkit.Recurrent(cell, I, H, backend="autograd")

    def kept(model, t):
        return saved_tensor_bytes(lambda: _output(model, torch.randn(t, B, I)))

    assert kept(bptt, T) <= 0.5 * kept(loop, T)
    # MUT1 keeps x and tanh(W_xproj x) (for its Function and autograd: one storage each)
    kept_gates = {"mut1": 2, "mut2": 1, "mut3": 2}[cell]
    per_step = (I + 2 * H if cell == "mut1" else I + H) + kept_gates * H
    assert kept(bptt, 2 * T) - kept(bptt, T) == T * per_step * B * 4


def test_mut1_keeps_no_gate_where_they_would_not_fit():
    """I > 2H: keeping r and n would pass half the autograd loop's bytes, so the recompute
    keeps none and the backward computes every gate again."""
    torch.manual_seed(0)
    I = 40
    bptt = rnnkit.Recurrent("mut1", I, H, backend="bptt")
    loop = rnnkit.Recurrent("mut1", I, H, backend="autograd")

    def kept(model, t):
        return saved_tensor_bytes(lambda: _output(model, torch.randn(t, B, I)))

    assert kept(bptt, T) <= 0.5 * kept(loop, T)
    assert kept(bptt, 2 * T) - kept(bptt, T) == T * (I + 2 * H) * B * 4
