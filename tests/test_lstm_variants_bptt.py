"""The LSTM variants on the buffered bptt path: memory kept for the backward (issue 2's target,
deterministic, so asserted) and the numpy tanh the loops use."""

import pytest
import torch

import rnnkit
from rnnkit.bench.core import _output
from rnnkit.bench.timing import saved_tensor_bytes
from rnnkit.cells.activations import tanh

T, B, I, H = 200, 4, 8, 16
VARIANTS = ["lstm_peephole", "lstm_cifg", "lstm_nofg"]


def _kept(cell: str, backend: str, steps: int = T) -> int:
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell, I, H, backend=backend)
    return saved_tensor_bytes(lambda: _output(layer, torch.randn(steps, B, I)))


# what bptt keeps a step besides x: c and the last gates (g, o; o alone without a forget gate)
PER_STEP = {"lstm_peephole": 3, "lstm_cifg": 3, "lstm_nofg": 2}


@pytest.mark.parametrize("cell", VARIANTS)
def test_bptt_saves_at_most_half_of_the_autograd_loop(cell):
    kept = {be: _kept(cell, be) for be in ("autograd", "bptt")}
    assert kept["bptt"] <= 0.5 * kept["autograd"], kept
    assert kept["bptt"] >= T * B * (I + 2 * H) * 4  # x, c and o a step: the floor


@pytest.mark.parametrize("cell", VARIANTS)
def test_bptt_keeps_only_c_and_the_last_gates_per_step(cell):
    """Not every gate (G * H a step) is kept: doubling T adds x, c and the last gates per step
    (h is rebuilt from o and c), and no more."""
    sizes = [_kept(cell, "bptt", t) for t in (T, 2 * T)]
    assert sizes[1] - sizes[0] == T * B * (I + PER_STEP[cell] * H) * 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_matches_torch_in_place_on_strided_views(dtype):
    z = torch.randn(5, 3, 7, dtype=dtype) * 4
    want = z.clone()
    want[:, 1] = torch.tanh(z[:, 1])  # only the gate block changes
    g = z[:, 1]  # a gate block: a strided view, overwritten in place
    assert tanh(g, g) is g
    torch.testing.assert_close(z, want)
    torch.testing.assert_close(tanh(z), torch.tanh(z))
