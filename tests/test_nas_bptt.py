"""NAS on the buffered bptt path: memory kept for the backward (issue 2's target), and float32
gradients through the oneDNN products against the autograd loop (the gradchecks are float64)."""

import torch

import rnnkit
from rnnkit.bench.core import _output
from rnnkit.bench.timing import saved_tensor_bytes

T, B, I, H = 100, 4, 8, 16


def test_nas_bptt_saves_at_most_half_of_the_autograd_loop():
    """Issue 2's memory target for the cells without a torch kernel: against the same cell's
    autograd loop (the benchmark's reference), here at a small size."""
    torch.manual_seed(0)
    loop = rnnkit.Recurrent("nas", I, H, backend="autograd")
    bptt = rnnkit.Recurrent("nas", I, H, backend="bptt")
    x = torch.randn(T, B, I)
    kept = {name: saved_tensor_bytes(lambda m=m: _output(m, x))
            for name, m in (("loop", loop), ("bptt", bptt))}
    assert kept["bptt"] <= 0.3 * kept["loop"], kept


def test_nas_bptt_keeps_x_h_c_and_the_preactivations_per_step():
    """Doubling T adds x, h, c and the 8 pre-activations per step, (I + 10 H) floats a batch
    row, with or without ``recompute`` (see nas.py: they fit well under half the autograd
    loop's bytes, and recomputing them costs a fifth of a step)."""
    torch.manual_seed(0)
    for recompute in (True, False):
        bptt = rnnkit.Recurrent("nas", I, H, backend="bptt", recompute=recompute)
        sizes = [saved_tensor_bytes(lambda t=t, m=bptt: _output(m, torch.randn(t, B, I)))
                 for t in (T, 2 * T)]
        assert sizes[1] - sizes[0] == T * (I + 10 * H) * B * 4


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
