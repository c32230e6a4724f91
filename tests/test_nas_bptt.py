"""NAS on the buffered bptt path: memory kept for the backward (issue 2's target), and float32
gradients through the oneDNN products against the autograd loop (the gradchecks are float64)."""

import torch

import rnnkit
from rnnkit.bench.core import CellLoop, _output
from rnnkit.bench.timing import saved_tensor_bytes

T, B, I, H = 100, 4, 8, 16


def test_nas_bptt_saves_at_most_half_of_the_cell_loop():
    torch.manual_seed(0)
    loop = CellLoop("nas", I, H)
    bptt = rnnkit.Recurrent("nas", I, H, backend="bptt")
    x = torch.randn(T, B, I)
    kept = {name: saved_tensor_bytes(lambda m=m: _output(m, x))
            for name, m in (("loop", loop), ("bptt", bptt))}
    assert kept["bptt"] <= 0.5 * kept["loop"], kept


def test_nas_bptt_keeps_only_x_h_and_c_per_step():
    """Doubling T adds x, h and c per step, (I + 2H) floats a batch row: no gate is kept."""
    torch.manual_seed(0)
    bptt = rnnkit.Recurrent("nas", I, H, backend="bptt")
    sizes = [saved_tensor_bytes(lambda t=t: _output(bptt, torch.randn(t, B, I)))
             for t in (T, 2 * T)]
    assert sizes[1] - sizes[0] == T * (I + 2 * H) * B * 4


def test_nas_bptt_float32_matches_autograd_with_lengths():
    torch.manual_seed(0)
    ref = rnnkit.Recurrent("nas", 5, 16, backend="autograd")
    mine = rnnkit.Recurrent("nas", 5, 16, backend="bptt")
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(9, 3, 5, requires_grad=True)
    lengths = torch.tensor([9, 5, 2])
    results = []
    for m in (ref, mine):
        out, (h, c) = m(x, lengths=lengths)
        loss = out.pow(2).sum() + h.sum() + c.pow(2).sum()
        results.append((out, torch.autograd.grad(loss, [x, *m.parameters()])))
    torch.testing.assert_close(results[1][0], results[0][0])
    for mine_g, ref_g in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(mine_g, ref_g, rtol=1e-4, atol=1e-5)
