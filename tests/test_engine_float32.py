"""float32: bptt against the autograd reference for every cell, on the paths float64 skips.

The float64 gradchecks (test_engine_gradients.py) never reach the oneDNN products, packed
weights and blocked transposes the bptt engine takes in float32 on the CPU (cells/matmul.py),
nor the numpy tanh (cells/activations.py). Here: outputs, final states and every gradient
(input, initial state, parameters) equal autograd's to float32 rounding, with variable lengths,
batch_first, no bias, B = 1, T = 1 and an input that needs no gradient.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.cells import available

CASES = {  # bias, B, T, lengths, batch_first, x requires grad
    "lengths-batch_first": (True, 3, 5, True, True, True),
    "no-bias-B1-T1": (False, 1, 1, False, False, True),
    "x-without-grad": (True, 2, 4, False, False, False),
    "no-bias-lengths": (False, 3, 6, True, False, True),
}


def _run(layer, x, h0, lengths, x_grad):
    x = x.clone().requires_grad_(x_grad)
    h0 = tuple(h.clone().requires_grad_() for h in h0)
    out, hn = layer(x, h0 if len(h0) > 1 else h0[0], lengths=lengths)
    hn = hn if isinstance(hn, tuple) else (hn,)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    loss = (out * weights).sum() + sum(((i + 2) * s).square().sum() for i, s in enumerate(hn))
    inputs = ([x] if x_grad else []) + list(h0) + list(layer.parameters())
    return out, hn, torch.autograd.grad(loss, inputs)


KEEPING = ("lstm", "lstm_peephole", "lstm_cifg", "lstm_nofg", "gru", "gru_cho",
           "mut1", "mut2", "mut3", "lstm_layernorm", "gru_layernorm")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cell", [*available(), *(f"{c} keeping its gates" for c in KEEPING)])
def test_bptt_matches_autograd_in_float32(cell, case):
    bias, B, T, masked, batch_first, x_grad = CASES[case]
    torch.manual_seed(0)
    I, H = 5, 7
    cell, keep = cell.split()[0], cell.endswith("gates")
    ref = rnnkit.Recurrent(cell, I, H, bias=bias, batch_first=batch_first, backend="autograd")
    ours = rnnkit.Recurrent(cell, I, H, bias=bias, batch_first=batch_first, backend="bptt",
                            recompute=not keep)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)
    h0 = tuple(torch.randn(1, B, H) for _ in range(ref.num_states))
    lengths = torch.randint(1, T + 1, (B,)) if masked else None
    if masked:
        lengths[0] = T
    out_r, hn_r, grads_r = _run(ref, x, h0, lengths, x_grad)
    out_o, hn_o, grads_o = _run(ours, x, h0, lengths, x_grad)
    torch.testing.assert_close(out_o, out_r, rtol=1e-4, atol=1e-5)
    for a, b in zip(hn_o, hn_r):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(grads_o, grads_r):
        # layer normalisation's gradients reach 100 here (a small spread of c' divides them)
        # and both float32 paths round at 1e-6 of the largest (bptt the nearer to float64):
        # measured against that largest entry
        scale = max(1.0, b.abs().max().item()) if "layernorm" in cell else 1.0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * scale)
