"""Each cell's forward against an independent transcription of its published equations.

The references below slice every weight block by hand and write the formulas literally, as
the decks (or TensorFlow's NASCell) print them; the cells are written for speed instead.
Gradients are pinned down separately by tests/test_engine_gradients.py.
"""

import pytest
import torch
from torch import sigmoid, tanh

import rnnkit
from rnnkit.cells import make_cell
from rnnkit.engine import run_sequence

B = 3


def _params(cell, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(s, generator=g, dtype=torch.float64) * 2 - 1) * scale
            for k, s in cell.parameter_shapes().items()}


def _data(cell, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, cell.input_size, generator=g, dtype=torch.float64)
    state = tuple(torch.randn(B, cell.hidden_size, generator=g, dtype=torch.float64)
                  for _ in range(cell.num_states))
    return x, state


def _step(cell, x, state, p):
    """One step through the cell's own path: input projection, then the step."""
    return cell.step(cell.input_projection(x.unsqueeze(0), p)[0], state, p)


def _blocks(w, n):
    return w.chunk(n, 0)


def _lin(x, w, b=None):
    return x @ w.t() + (0 if b is None else b)


# ---- GRU -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_gru_matches_torch_grucell(bias):
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(5, 4, bias=bias).double()
    cell = make_cell("gru", 5, 4, bias)
    p = dict(ref.named_parameters())
    x, (h,) = _data(cell)
    with torch.no_grad():
        (ours,) = _step(cell, x, (h,), p)
        torch.testing.assert_close(ours, ref(x, h))


def test_gru_layer_loads_torch_weights_both_ways():
    torch.manual_seed(0)
    theirs = torch.nn.GRU(5, 6, num_layers=2, bidirectional=True)
    x = torch.randn(7, 2, 5)
    for backend in ("bptt", "autograd"):
        ours = rnnkit.Recurrent("gru", 5, 6, num_layers=2, bidirectional=True, backend=backend)
        ours.load_state_dict(theirs.state_dict())
        out, h = ours(x)
        ref_out, ref_h = theirs(x)
        torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(h, ref_h, rtol=1e-5, atol=1e-6)
        back = torch.nn.GRU(5, 6, num_layers=2, bidirectional=True)
        back.load_state_dict(ours.state_dict())
        torch.testing.assert_close(back(x)[0], out, rtol=1e-5, atol=1e-6)


def test_gru_cho_is_the_decks_formula():
    cell = make_cell("gru_cho", 5, 4)
    p = _params(cell)
    x, (h,) = _data(cell)
    Wir, Wiz, Win = _blocks(p["weight_ih"], 3)
    Whr, Whz, Whn = _blocks(p["weight_hh"], 3)
    bir, biz, bin_ = _blocks(p["bias_ih"], 3)
    bhr, bhz, bhn = _blocks(p["bias_hh"], 3)
    r = sigmoid(_lin(x, Wir, bir) + _lin(h, Whr, bhr))
    z = sigmoid(_lin(x, Wiz, biz) + _lin(h, Whz, bhz))
    n = tanh(_lin(x, Win, bin_) + _lin(r * h, Whn, bhn))  # reset before the matmul
    want = (1 - z) * n + z * h
    (got,) = _step(cell, x, (h,), p)
    torch.testing.assert_close(got, want)
    # and it is a different cell from torch's form with the same weights
    (torch_form,) = _step(make_cell("gru", 5, 4), x, (h,), p)
    assert (torch_form - got).abs().max() > 1e-3


# ---- LSTM variants (Greff et al. 2015) -----------------------------------------------------

def _lstm_reference(x, h, c, p, peephole=None):
    """torch.nn.LSTM's equations (i, f, g, o), optionally with Gers & Schmidhuber peepholes."""
    Wi, Wf, Wg, Wo = _blocks(p["weight_ih"], 4)
    Ui, Uf, Ug, Uo = _blocks(p["weight_hh"], 4)
    bi, bf, bg, bo = (a + b for a, b in zip(_blocks(p["bias_ih"], 4), _blocks(p["bias_hh"], 4)))
    pi, pf, po = (0, 0, 0) if peephole is None else peephole
    i = sigmoid(_lin(x, Wi) + _lin(h, Ui) + bi + pi * c)
    f = sigmoid(_lin(x, Wf) + _lin(h, Uf) + bf + pf * c)
    g = tanh(_lin(x, Wg) + _lin(h, Ug) + bg)
    c_new = f * c + i * g
    o = sigmoid(_lin(x, Wo) + _lin(h, Uo) + bo + po * c_new)
    return o * tanh(c_new), c_new


def test_lstm_peephole_is_gers_schmidhuber():
    cell = make_cell("lstm_peephole", 5, 4)
    p = _params(cell)
    x, (h, c) = _data(cell)
    want = _lstm_reference(x, h, c, p, peephole=p["weight_peephole"])
    torch.testing.assert_close(_step(cell, x, (h, c), p), want)


def test_lstm_peephole_with_zero_peepholes_is_lstm():
    cell, lstm = make_cell("lstm_peephole", 5, 4), make_cell("lstm", 5, 4)
    p = _params(cell)
    p["weight_peephole"] = torch.zeros_like(p["weight_peephole"])
    x, state = _data(cell)
    torch.testing.assert_close(_step(cell, x, state, p), _step(lstm, x, state, p))


def test_lstm_cifg_is_lstm_with_input_gate_one_minus_forget():
    cell = make_cell("lstm_cifg", 5, 4)
    p = _params(cell)
    x, (h, c) = _data(cell)
    Wf, Wg, Wo = _blocks(p["weight_ih"], 3)
    Uf, Ug, Uo = _blocks(p["weight_hh"], 3)
    bf, bg, bo = (a + b for a, b in zip(_blocks(p["bias_ih"], 3), _blocks(p["bias_hh"], 3)))
    f = sigmoid(_lin(x, Wf) + _lin(h, Uf) + bf)
    g = tanh(_lin(x, Wg) + _lin(h, Ug) + bg)
    o = sigmoid(_lin(x, Wo) + _lin(h, Uo) + bo)
    c_new = f * c + (1 - f) * g
    torch.testing.assert_close(_step(cell, x, (h, c), p), (o * tanh(c_new), c_new))
    # an LSTM whose input-gate rows are minus the forget-gate rows has i = sigm(-z_f) = 1 - f
    lstm = make_cell("lstm", 5, 4)
    q = {k: torch.cat([-_blocks(v, 3)[0], v]) for k, v in p.items()}
    torch.testing.assert_close(_step(lstm, x, (h, c), q), (o * tanh(c_new), c_new))


def test_lstm_nofg_is_lstm_with_forget_gate_fixed_open():
    cell = make_cell("lstm_nofg", 5, 4)
    p = _params(cell)
    x, (h, c) = _data(cell)
    Wi, Wg, Wo = _blocks(p["weight_ih"], 3)
    Ui, Ug, Uo = _blocks(p["weight_hh"], 3)
    bi, bg, bo = (a + b for a, b in zip(_blocks(p["bias_ih"], 3), _blocks(p["bias_hh"], 3)))
    i = sigmoid(_lin(x, Wi) + _lin(h, Ui) + bi)
    g = tanh(_lin(x, Wg) + _lin(h, Ug) + bg)
    o = sigmoid(_lin(x, Wo) + _lin(h, Uo) + bo)
    c_new = c + i * g  # deck 004: no forget gate
    torch.testing.assert_close(_step(cell, x, (h, c), p), (o * tanh(c_new), c_new))
    # an LSTM with zero forget weights and an infinite forget bias has f = 1 exactly
    lstm = make_cell("lstm", 5, 4)
    q = {}
    for k, v in p.items():
        fill = float("inf") if k == "bias_ih" else 0.0
        rows = _blocks(v, 3)
        q[k] = torch.cat([rows[0], torch.full_like(rows[0], fill), rows[1], rows[2]])
    torch.testing.assert_close(_step(lstm, x, (h, c), q), (o * tanh(c_new), c_new))


# ---- MUT1-3 (Jozefowicz et al. 2015, deck 003) -----------------------------------------------

def _x_itself(cell, x, p):
    if cell.input_size == cell.hidden_size:
        assert "weight_xproj" not in p  # the deck's exact form: no projection at all
        return x
    return _lin(x, p["weight_xproj"])


def _mut1(cell, x, h, p):
    W_xr, W_xz = _blocks(p["weight_ih"], 2)  # layout n, r, z; W_ih rows r, z
    W_hh, W_hr = _blocks(p["weight_hh"], 2)  # W_hh rows n (reads r*h), r
    b_in, b_ir, b_iz = _blocks(p["bias_ih"], 3)
    b_hn, b_hr = _blocks(p["bias_hh"], 2)
    b_z, b_r, b_h = b_iz, b_ir + b_hr, b_in + b_hn
    z = sigmoid(_lin(x, W_xz) + b_z)
    r = sigmoid(_lin(x, W_xr) + _lin(h, W_hr) + b_r)
    return tanh(_lin(r * h, W_hh) + tanh(_x_itself(cell, x, p)) + b_h) * z + h * (1 - z)


def _mut2(cell, x, h, p):
    W_xz, W_xh = _blocks(p["weight_ih"], 2)  # layout r, z, n; W_ih rows z, n
    W_hr, W_hz, W_hh = _blocks(p["weight_hh"], 3)
    b_r, b_z, b_h = (a + b for a, b in zip(_blocks(p["bias_ih"], 3), _blocks(p["bias_hh"], 3)))
    z = sigmoid(_lin(x, W_xz) + _lin(h, W_hz) + b_z)
    r = sigmoid(_x_itself(cell, x, p) + _lin(h, W_hr) + b_r)
    return tanh(_lin(r * h, W_hh) + _lin(x, W_xh) + b_h) * z + h * (1 - z)


def _mut3(cell, x, h, p):
    W_xr, W_xz, W_xh = _blocks(p["weight_ih"], 3)
    W_hr, W_hz, W_hh = _blocks(p["weight_hh"], 3)
    b_r, b_z, b_h = (a + b for a, b in zip(_blocks(p["bias_ih"], 3), _blocks(p["bias_hh"], 3)))
    z = sigmoid(_lin(x, W_xz) + _lin(tanh(h), W_hz) + b_z)
    r = sigmoid(_lin(x, W_xr) + _lin(h, W_hr) + b_r)
    return tanh(_lin(r * h, W_hh) + _lin(x, W_xh) + b_h) * z + h * (1 - z)


@pytest.mark.parametrize("name,formula", [("mut1", _mut1), ("mut2", _mut2), ("mut3", _mut3)])
@pytest.mark.parametrize("sizes", [(4, 4), (3, 4), (6, 4)])
def test_mut_is_the_decks_formula(name, formula, sizes):
    cell = make_cell(name, *sizes)
    p = _params(cell)
    x, (h,) = _data(cell)
    (got,) = _step(cell, x, (h,), p)
    torch.testing.assert_close(got, formula(cell, x, h, p))


def test_mut_projects_x_only_when_sizes_differ():
    for name in ("mut1", "mut2"):
        assert "weight_xproj" not in make_cell(name, 4, 4).parameter_shapes()
        assert make_cell(name, 3, 4).parameter_shapes()["weight_xproj"] == (4, 3)
    assert "weight_xproj" not in make_cell("mut3", 3, 4).parameter_shapes()
    # with I == H, x really enters as itself: shifting x along a direction the weights cannot
    # see (W_ih x = 0) still changes MUT1's output, through tanh(x)
    cell = make_cell("mut1", 4, 4)
    p = _params(cell)
    p["weight_ih"] = torch.zeros_like(p["weight_ih"])
    x, (h,) = _data(cell)
    (a,) = _step(cell, x, (h,), p)
    (b,) = _step(cell, x + 1, (h,), p)
    assert (a - b).abs().min() > 0


# ---- NAS (Zoph & Le 2017, TensorFlow's NASCell) ---------------------------------------------

def _nas_tensorflow(x, h, c, p):
    """TensorFlow's NASCell.call, line for line (no projection), with torch-style biases."""
    sigmoid_, tanh_, relu = torch.sigmoid, torch.tanh, torch.relu
    rows = (4, 6, 0, 2, 5, 7, 1, 3)  # the split each row block holds (rnnkit's documented order)

    def tf_splits(m):
        ours = m.chunk(8, dim=1)
        return [ours[rows.index(k)] for k in range(8)]

    inputs_matrix_splits = tf_splits(_lin(x, p["weight_ih"], p["bias_ih"]))
    m_matrix_splits = tf_splits(_lin(h, p["weight_hh"], p["bias_hh"]))
    layer1_0 = sigmoid_(inputs_matrix_splits[0] + m_matrix_splits[0])
    layer1_1 = relu(inputs_matrix_splits[1] + m_matrix_splits[1])
    layer1_2 = sigmoid_(inputs_matrix_splits[2] + m_matrix_splits[2])
    layer1_3 = relu(inputs_matrix_splits[3] * m_matrix_splits[3])
    layer1_4 = tanh_(inputs_matrix_splits[4] + m_matrix_splits[4])
    layer1_5 = sigmoid_(inputs_matrix_splits[5] + m_matrix_splits[5])
    layer1_6 = tanh_(inputs_matrix_splits[6] + m_matrix_splits[6])
    layer1_7 = sigmoid_(inputs_matrix_splits[7] + m_matrix_splits[7])
    l2_0 = tanh_(layer1_0 * layer1_1)
    l2_1 = tanh_(layer1_2 + layer1_3)
    l2_2 = tanh_(layer1_4 * layer1_5)
    l2_3 = sigmoid_(layer1_6 + layer1_7)
    l2_0 = tanh_(l2_0 + c)  # inject the cell
    new_c = l2_0 * l2_1
    l3_1 = tanh_(l2_2 + l2_3)
    new_m = tanh_(new_c * l3_1)
    return new_m, new_c


def test_nas_is_tensorflows_nascell():
    from rnnkit.cells.nas import ORDER

    assert ORDER == (4, 6, 0, 2, 5, 7, 1, 3)
    cell = make_cell("nas", 5, 4)
    x, (h, c) = _data(cell)
    for scale in (1.0, 3.0):  # larger weights: relus and saturation both exercised
        p = _params(cell, scale=scale)
        torch.testing.assert_close(_step(cell, x, (h, c), p), _nas_tensorflow(x, h, c, p))


# ---- layouts: counts, every parameter used, initialisation -----------------------------------

MINE = ["gru", "gru_cho", "lstm_peephole", "lstm_cifg", "lstm_nofg", "mut1", "mut2", "mut3", "nas",
        "lstm_layernorm", "gru_layernorm"]


def _expected_count(name, I, H, bias):
    b = 1 if bias else 0
    proj = H * I if I != H else 0
    return {
        "gru": 3 * H * (I + H + 2 * b),
        "gru_cho": 3 * H * (I + H + 2 * b),
        "lstm_peephole": 4 * H * (I + H + 2 * b) + 3 * H,
        "lstm_cifg": 3 * H * (I + H + 2 * b),
        "lstm_nofg": 3 * H * (I + H + 2 * b),
        "mut1": 2 * H * I + 2 * H * H + 5 * H * b + proj,
        "mut2": 2 * H * I + 3 * H * H + 6 * H * b + proj,
        "mut3": 3 * H * I + 3 * H * H + 6 * H * b,
        "nas": 8 * H * (I + H + 2 * b),
        "lstm_layernorm": 4 * H * (I + H + 2 * b) + 8 * H + H + H * b,  # LN gains, c's bias
        "gru_layernorm": 3 * H * (I + H + 2 * b) + 6 * H,
    }[name]


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_counts(name, bias):
    for I, H in [(7, 5), (5, 5)]:
        layer = rnnkit.Recurrent(name, I, H, bias=bias)
        assert sum(q.numel() for q in layer.parameters()) == _expected_count(name, I, H, bias)
    if name == "gru":
        torch_gru = torch.nn.GRU(7, 5, bias=bias)
        assert sum(q.numel() for q in torch_gru.parameters()) == _expected_count(name, 7, 5, bias)


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("sizes", [(3, 4), (4, 4)])
def test_every_parameter_is_used(name, sizes):
    """Each parameter gets a non-zero gradient: no dead rows in any layout."""
    cell = make_cell(name, *sizes)
    p = {k: v.requires_grad_() for k, v in _params(cell, seed=5).items()}
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4, B, cell.input_size, generator=g, dtype=torch.float64)
    state = tuple(torch.randn(B, cell.hidden_size, generator=g, dtype=torch.float64)
                  for _ in range(cell.num_states))
    out, final = run_sequence(cell, x, state, p, "bptt")
    grads = torch.autograd.grad(out.pow(2).sum() + final[-1].sum(), list(p.values()))
    for (k, v), gr in zip(p.items(), grads):
        assert gr.shape == v.shape
        rows = gr.reshape(gr.shape[0], -1).abs().sum(1)
        assert (rows > 0).all(), f"{name}: {k} has rows without gradient"


@pytest.mark.parametrize("name,gate,sign", [("gru", "z", 1.0), ("gru_cho", "z", 1.0),
                                            ("lstm_cifg", "f", 1.0), ("lstm_peephole", "f", 1.0),
                                            ("mut1", "z", -1.0), ("mut2", "z", -1.0),
                                            ("mut3", "z", -1.0)])
def test_forget_bias_reaches_the_keep_gate(name, gate, sign):
    torch.manual_seed(0)
    plain = rnnkit.Recurrent(name, 3, 4)
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(name, 3, 4, forget_bias=2.0)
    cell = layer.cells[0]
    k = cell.gate_names.index(gate)
    rows = slice(k * 4, (k + 1) * 4)
    b_ih, b_hh = layer.bias_ih_l0.detach(), layer.bias_hh_l0.detach()
    assert torch.all(b_ih[rows] == sign * 2.0)
    keep = torch.ones_like(b_ih, dtype=torch.bool)
    keep[rows] = False
    torch.testing.assert_close(b_ih[keep], plain.bias_ih_l0.detach()[keep])
    if (k + 1) * 4 <= b_hh.numel():  # the gate has a recurrent bias: it starts at zero
        assert torch.all(b_hh[rows] == 0)
    else:  # MUT1's z reads no h: bias_hh (n, r) must be left alone
        torch.testing.assert_close(b_hh, plain.bias_hh_l0.detach())


@pytest.mark.parametrize("name", ["lstm_nofg", "nas"])
def test_cells_without_a_keep_gate_refuse_forget_bias(name):
    with pytest.raises(ValueError, match="forget"):
        rnnkit.Recurrent(name, 3, 4, forget_bias=1.0)


@pytest.mark.parametrize("name", MINE)
def test_without_bias_bptt_matches_autograd(name):
    """bias=False layouts (no bias_ih / bias_hh) through the hand-derived backward."""
    for sizes in [(3, 4), (4, 4)]:
        cell = make_cell(name, *sizes, bias=False)
        assert not any(k.startswith("bias") for k in cell.parameter_shapes())
        p = {k: v.requires_grad_() for k, v in _params(cell, seed=7).items()}
        g = torch.Generator().manual_seed(8)
        x = torch.randn(5, B, cell.input_size, generator=g, dtype=torch.float64,
                        requires_grad=True)
        state = tuple(torch.randn(B, cell.hidden_size, generator=g, dtype=torch.float64)
                      for _ in range(cell.num_states))
        results = []
        for backend in ("autograd", "bptt"):
            out, final = run_sequence(cell, x, state, p, backend)
            loss = out.pow(2).sum() + final[-1].sum()
            results.append((out, torch.autograd.grad(loss, [x, *p.values()])))
        torch.testing.assert_close(results[0][0], results[1][0])
        for a, b in zip(results[0][1], results[1][1]):
            torch.testing.assert_close(a, b)


def test_tanh_autograd_matches_torch_tanh_in_value_and_gradient():
    from rnnkit.cells.activations import tanh_autograd

    torch.manual_seed(0)
    x = torch.randn(50, 7, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(tanh_autograd(x), torch.tanh(x))
    assert torch.autograd.gradcheck(tanh_autograd, (x,))
    with torch.no_grad():
        assert not tanh_autograd(x).requires_grad
