"""Memory kept for the backward pass: bptt against the naive autograd loop (issue 2's target).

Saved-tensor bytes are deterministic (no timing), so the target is asserted here: the buffered
bptt path keeps x and h (GRU) or x, c and the gates g, o (LSTM, which rebuilds h from them) per
step and recomputes the other gates in the backward.
"""

import pytest
import torch

import rnnkit
from rnnkit.bench.core import CellLoop, _output
from rnnkit.bench.timing import saved_tensor_bytes
from rnnkit.errors import UserError

T, B, I, H = 200, 4, 8, 16


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bptt_saves_at_most_half_of_the_cell_loop(cell):
    torch.manual_seed(0)
    loop = CellLoop(cell, I, H)
    bptt = rnnkit.Recurrent(cell, I, H, backend="bptt")
    x = torch.randn(T, B, I)
    kept = {name: saved_tensor_bytes(lambda m=m: _output(m, x))
            for name, m in (("loop", loop), ("bptt", bptt))}
    assert kept["bptt"] <= 0.5 * kept["loop"], kept
    # and it is the recompute, not a lost graph: a (T, B, H) tensor per step is the floor
    assert kept["bptt"] >= T * B * (H + I) * 4


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bptt_keeps_no_per_step_gates(cell):
    """Not all of the gates' width (G * H per step) is kept: doubling T adds x and h (GRU:
    I + H floats a batch row) or x, c, g and o (LSTM: I + 3H), and no more."""
    torch.manual_seed(0)
    bptt = rnnkit.Recurrent(cell, I, H, backend="bptt")
    per_step = (I + (3 if cell == "lstm" else 1) * H) * B * 4
    sizes = [saved_tensor_bytes(lambda t=t: _output(bptt, torch.randn(t, B, I)))
             for t in (T, 2 * T)]
    assert sizes[1] - sizes[0] == T * per_step


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keeping_the_gates_keeps_what_the_default_recomputes(cell):
    """recompute=False trades memory for speed: exactly what the default recomputes (LSTM: the
    gates i and f, 2H floats a batch row and step; GRU: r, z, W_hn h + b_hn, n: 4H) more."""
    torch.manual_seed(0)
    sizes = {}
    for recompute in (True, False):
        bptt = rnnkit.Recurrent(cell, I, H, backend="bptt", recompute=recompute)
        x = torch.randn(T, B, I)
        sizes[recompute] = saved_tensor_bytes(lambda m=bptt, x=x: _output(m, x))
    assert sizes[False] - sizes[True] == T * B * (2 if cell == "lstm" else 4) * H * 4


def test_recompute_false_is_refused_where_a_cell_cannot_keep_its_gates():
    with pytest.raises(UserError, match="recompute=False.*cell 'mingru'"):
        rnnkit.Recurrent("mingru", I, H, recompute=False)
