"""The layer-normalised cells (cells/layernorm.py) against Ba et al. 2016's equations written out
literally, with torch.nn.LayerNorm modules; their parameters and initialisation.

Gradients: every backend against autograd and float64 gradchecks come from the parametrised
tests of test_engine_gradients.py, the compiled loops against the Python loops from
test_compiled.py, bptt without bias and every parameter used from test_cells.py, keeping W_ih x
(recompute=False) from the KEEPING lists. Here: the equations, the layout and initialisation,
and the bias gradients.
"""

import pytest
import torch
from torch import nn, sigmoid, tanh

import rnnkit
from rnnkit.cells import make_cell
from rnnkit.engine import run_sequence

CELLS = ["lstm_layernorm", "gru_layernorm"]
B = 3


def _params(cell, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(s, generator=g, dtype=torch.float64) * 2 - 1
            for k, s in cell.parameter_shapes().items()}


def _ln(n, gain, bias=None):
    """A torch.nn.LayerNorm holding ``gain`` and ``bias`` (eps 1e-5)."""
    m = nn.LayerNorm(n, elementwise_affine=True, bias=bias is not None).double()
    with torch.no_grad():
        m.weight.copy_(gain)
        if bias is not None:
            m.bias.copy_(bias)
    return m


def _lstm_ln_reference(x, h, c, p):
    """Ba et al. 2016, eq. (20)-(22), gate order i, f, g, o, the betas of the projections being
    torch's b_ih and b_hh."""
    H = h.shape[1]
    pre = (_ln(4 * H, p["weight_ln_ih"], p.get("bias_ih"))(x @ p["weight_ih"].t())
           + _ln(4 * H, p["weight_ln_hh"], p.get("bias_hh"))(h @ p["weight_hh"].t()))
    i, f, g, o = (pre[:, k * H : (k + 1) * H] for k in range(4))
    c_new = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h_new = sigmoid(o) * tanh(_ln(H, p["weight_ln_c"], p.get("bias_ln_c"))(c_new))
    return h_new, c_new


def _gru_ln_reference(x, h, p):
    """Haste's LayerNormGRU in torch.nn.GRU's form: r scales the recurrent part of n."""
    H = h.shape[1]
    a = _ln(3 * H, p["weight_ln_ih"], p.get("bias_ih"))(x @ p["weight_ih"].t())
    s = _ln(3 * H, p["weight_ln_hh"], p.get("bias_hh"))(h @ p["weight_hh"].t())
    r = sigmoid(a[:, :H] + s[:, :H])
    z = sigmoid(a[:, H : 2 * H] + s[:, H : 2 * H])
    n = tanh(a[:, 2 * H :] + r * s[:, 2 * H :])
    return ((1 - z) * n + z * h,)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("backend", ["autograd", "bptt"])
def test_the_cells_follow_the_paper(name, bias, backend):
    """Two steps of the layer (every backend) against the equations, in float64."""
    cell = make_cell(name, 5, 4, bias)
    p = _params(cell)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, B, 5, generator=g, dtype=torch.float64)
    state = tuple(torch.randn(B, 4, generator=g, dtype=torch.float64)
                  for _ in range(cell.num_states))
    out, final = run_sequence(cell, x, state, p, backend)
    ref = state
    with torch.no_grad():
        for t in range(2):
            ref = (_lstm_ln_reference(x[t], *ref, p) if name == "lstm_layernorm"
                   else _gru_ln_reference(x[t], *ref, p))
            torch.testing.assert_close(out[t], ref[0])
    for a, b in zip(final, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_parameters_and_their_initialisation(name, bias):
    I, H = 6, 5
    G = 4 if name == "lstm_layernorm" else 3
    layer = rnnkit.Recurrent(name, I, H, bias=bias)
    shapes = {k: tuple(v.shape) for k, v in layer.named_parameters()}
    expected = {"weight_ih_l0": (G * H, I), "weight_hh_l0": (G * H, H),
                "weight_ln_ih_l0": (G * H,), "weight_ln_hh_l0": (G * H,)}
    if bias:
        expected.update(bias_ih_l0=(G * H,), bias_hh_l0=(G * H,))
    if name == "lstm_layernorm":
        expected["weight_ln_c_l0"] = (H,)
        if bias:
            expected["bias_ln_c_l0"] = (H,)
    assert shapes == expected
    for k, v in layer.named_parameters():  # LN gains 1 and its bias 0, as torch.nn.LayerNorm
        if k.startswith("weight_ln"):
            assert torch.all(v == 1), k
        elif k.startswith("bias_ln"):
            assert torch.all(v == 0), k
        else:
            assert v.abs().max() <= H**-0.5 and v.std() > 0, k


@pytest.mark.parametrize("name", CELLS)
def test_forget_bias_and_chrono_reach_the_keep_gate(name):
    layer = rnnkit.Recurrent(name, 3, 4, forget_bias=2.0)
    gate = "f" if name == "lstm_layernorm" else "z"
    k = layer.cells[0].gate_names.index(gate)
    assert torch.all(layer.bias_ih_l0.detach()[4 * k : 4 * (k + 1)] == 2.0)
    assert torch.all(layer.bias_hh_l0.detach()[4 * k : 4 * (k + 1)] == 0.0)
    rnnkit.Recurrent(name, 3, 4, init="chrono")  # accepted: a keep gate and biases


@pytest.mark.parametrize("name", CELLS)
def test_the_two_bias_gradients_have_their_own_memory(name):
    """db_ih and db_hh are the same sums for the gates they share: two tensors all the same
    (each parameter's .grad its own). Every parameter getting a gradient, and bptt without
    bias, are test_cells.py's (MINE)."""
    cell = make_cell(name, 3, 4)
    p = {k: v.requires_grad_() for k, v in _params(cell, seed=5).items()}
    x = torch.randn(4, B, 3, dtype=torch.float64)
    out, _ = run_sequence(cell, x, cell.zero_state(B, x), p, "bptt")
    d_ih, d_hh = torch.autograd.grad(out.sum(), [p["bias_ih"], p["bias_hh"]])
    assert d_ih.data_ptr() != d_hh.data_ptr()
    rows = 2 * 4  # the r, z rows of the GRU (and i, f of the LSTM): the same gradient
    torch.testing.assert_close(d_ih[:rows], d_hh[:rows])


def test_the_layer_normalised_cells_are_listed_with_a_description():
    from rnnkit.cells import available, describe

    for name in CELLS:
        assert name in available()
        assert "layer normalisation" in describe(name)
