"""minGRU / minLSTM (Feng et al. 2024) and the scan engine, against the sequential loops.

References: the paper's equations written literally (``_paper_*`` below, and the paper's own
log-space code), the ``autograd`` loop over ``cell.step`` and the hand-derived ``bptt``.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.cells import make_cell
from rnnkit.cells.minimal import _g_and_slope, g, log_g
from rnnkit.engine import run_sequence
from rnnkit.engine.scan import CHUNK, adjoint_scan, lerp_scan, log_scan, run_scan

CELLS = ["mingru", "minlstm"]
METHODS = ["parallel", "sequential"]
F64 = torch.float64


def _params(cell, seed=0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(s, generator=gen, dtype=dtype) * 2 - 1).requires_grad_()
            for k, s in cell.parameter_shapes().items()}


def _data(cell, T, B, seed=1, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, cell.input_size, generator=gen, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, cell.hidden_size, generator=gen, dtype=dtype) * 2  # any sign
    return x, h0.requires_grad_()


def _run(cell, backend, x, h0, p, mask=None):
    """(outputs, final h, gradients of a loss on both wrt x, h0 and every parameter)."""
    if backend in METHODS:
        out, (h,) = run_scan(cell, cell.input_projection(x, p), (h0,), p, mask, method=backend)
    elif backend == "loop":
        out, h = _loop(cell, x, h0, p)
    else:
        out, (h,) = run_sequence(cell, x, (h0,), p, backend, mask)
    w = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    loss = (out.pow(2) * w).sum() + (3 * h).sum()
    return out, h, torch.autograd.grad(loss, [x, h0, *p.values()])


def _loop(cell, x, h0, p):
    """The sequential loop over ``cell.step``, as run_autograd, but stepping through
    ``unbind``: indexing xp[t] makes autograd build a full (T, B, K) gradient per step, which
    costs O(T^2) at T = 4096 (half a minute instead of a fraction of a second)."""
    h, hs = h0, []
    for x_t in cell.input_projection(x, p).unbind(0):
        (h,) = cell.step(x_t, (h,), p)
        hs.append(h)
    return torch.stack(hs), h


def _assert_same(a, b, **tol):
    for u, v in zip(a[:2], b[:2]):
        torch.testing.assert_close(u, v, **tol)
    for u, v in zip(a[2], b[2]):
        torch.testing.assert_close(u, v, **tol)


# ---- the cells are the paper's equations ---------------------------------------------------

def _paper_step(name, x, h, p):
    """Feng et al. 2024, section 3, written literally with the documented row order."""
    H = h.shape[-1]
    W, b = p["weight_ih"], p["bias_ih"]
    lin = [x @ W[k * H:(k + 1) * H].t() + b[k * H:(k + 1) * H] for k in range(W.shape[0] // H)]
    if name == "mingru":
        z, h_tilde = torch.sigmoid(lin[0]), g(lin[1])
        return (1 - z) * h + z * h_tilde
    f, i, h_tilde = torch.sigmoid(lin[0]), torch.sigmoid(lin[1]), g(lin[2])
    return f / (f + i) * h + i / (f + i) * h_tilde


def _paper_log_space(name, x, h0, p):
    """The paper's log-space code (Appendix B; Heinsen's scan), for positive h0 only."""
    H = h0.shape[-1]
    k = F.linear(x, p["weight_ih"], p["bias_ih"]).split(H, -1)
    if name == "mingru":
        log_coeffs, log_values = -F.softplus(k[0]), -F.softplus(-k[0]) + log_g(k[1])
    else:
        diff = F.softplus(-k[0]) - F.softplus(-k[1])
        log_coeffs, log_values = -F.softplus(diff), -F.softplus(-diff) + log_g(k[2])
    log_values = torch.cat([torch.log(h0).unsqueeze(0), log_values])
    a_star = F.pad(torch.cumsum(log_coeffs, 0), (0, 0, 0, 0, 1, 0))
    log_h = a_star + torch.logcumsumexp(log_values - a_star, 0)
    return torch.exp(log_h)[1:]


@pytest.mark.parametrize("name", CELLS)
def test_step_is_the_papers_equation(name):
    cell = make_cell(name, 5, 4)
    p = _params(cell)
    x, h = _data(cell, 1, 3)
    with torch.no_grad():
        want = _paper_step(name, x[0], h, p)
        xp = cell.input_projection(x, p)[0]
        torch.testing.assert_close(cell.step(xp, (h,), p)[0], want)
        torch.testing.assert_close(cell.forward_step(xp, (h,), p)[0][0], want)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("method", METHODS)
def test_scan_matches_the_papers_log_space_code(name, method):
    cell = make_cell(name, 5, 4)
    p = _params(cell)
    x, h0 = _data(cell, 150, 3)
    h0 = h0.detach().abs() + 0.1  # the paper's scan takes log h0
    with torch.no_grad():
        out, _ = run_scan(cell, cell.input_projection(x, p), (h0,), p, method=method)
        torch.testing.assert_close(out, _paper_log_space(name, x, h0, p))


def test_positive_activation_g():
    x = torch.linspace(-30, 30, 2001, dtype=F64)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), torch.log(g(x)))
    torch.testing.assert_close(g(torch.zeros(1, dtype=F64)), torch.full((1,), 0.5, dtype=F64))
    torch.testing.assert_close(g(x[x > 0]), x[x > 0] + 0.5)
    gx, slope = _g_and_slope(x, torch.sigmoid(x))  # the form the cells use
    torch.testing.assert_close(gx, g(x))
    edge = torch.tensor([-1.5, -1.0, -1e-300, -0.0, 0.0, 1e-300, 2.0], dtype=F64)
    s = torch.sigmoid(edge)  # g' = 1 from x = 0 on, as autograd's where gives it
    slope_edge = _g_and_slope(edge, s.clone())[1]  # overwrites its s with g'
    torch.testing.assert_close(slope_edge, torch.where(edge >= 0, 1.0, s * (1 - s)))
    x.requires_grad_()
    torch.testing.assert_close(slope, torch.autograd.grad(g(x).sum(), x)[0])


# ---- scan == autograd loop == bptt -----------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_scan_and_bptt_match_the_autograd_loop(name, masked):
    cell = make_cell(name, 6, 5)
    p = _params(cell, seed=2)
    T = 3 * CHUNK + 7  # several chunks, the last one partial
    x, h0 = _data(cell, T, 4, seed=3)
    mask = None
    if masked:  # lengths (one shorter than a chunk: whole chunks masked) and a ragged mask
        mask = torch.arange(T).unsqueeze(1) < torch.tensor([T, 5, CHUNK + 1, T]).unsqueeze(0)
        mask[::3, 3] = False
    ref = _run(cell, "autograd", x, h0, p, mask)
    for backend in ["bptt", *METHODS]:
        got = _run(cell, backend, x, h0, p, mask)
        assert all(torch.isfinite(t).all() for t in got[2]), backend
        _assert_same(got, ref)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("backend", ["bptt", *METHODS])
def test_gradcheck(name, backend):
    cell = make_cell(name, 3, 4)
    p = _params(cell, seed=4)
    x, h0 = _data(cell, 7, 2, seed=5)
    mask = torch.arange(7).unsqueeze(1) < torch.tensor([7, 3]).unsqueeze(0)
    names = list(p)

    def f(x, h0, *ps):
        pp = dict(zip(names, ps))
        if backend == "bptt":
            return run_sequence(cell, x, (h0,), pp, "bptt", mask)[0]
        return run_scan(cell, cell.input_projection(x, pp), (h0,), pp, mask, method=backend)[0]

    assert torch.autograd.gradcheck(f, (x, h0, *p.values()))


@pytest.mark.parametrize("name", CELLS)
def test_float32_scan_at_T_4096(name):
    """float32 scans against the float64 loop at T = 4096, errors relative to the largest value.

    The sequential scan rounds like the float32 loop (measured <= 3 eps): 16 eps. The parallel
    scan forms e^(A(t) - A(s)) from sums A of log a, losing about eps |A| <= eps CHUNK |log a|
    per term (|log a| ~ 1 here): outputs measured <= 0.7 CHUNK eps, tolerance 2 CHUNK eps;
    gradients go through the logcumsumexp backward, which cancels the same way twice more and
    sums over all steps: measured <= 6 CHUNK eps, tolerance 16 CHUNK eps. Unchunked, |A| grows
    to ~T and the outputs miss their tolerance by an order of magnitude (checked last)."""
    cell = make_cell(name, 16, 16)
    p = _params(cell, seed=6)
    x, h0 = _data(cell, 4096, 2, seed=7)
    ref = _run(cell, "loop", x, h0, p)
    p32 = {k: v.detach().float().requires_grad_() for k, v in p.items()}
    x32, h32 = (t.detach().float().requires_grad_() for t in (x, h0))
    eps = torch.finfo(torch.float32).eps

    def error(a, b):
        a, b = a.detach().double(), b.detach()
        return float((a - b).abs().max() / b.abs().max())

    for method, out_tol, grad_tol in [("sequential", 16 * eps, 16 * eps),
                                      ("parallel", 2 * CHUNK * eps, 16 * CHUNK * eps)]:
        out, h, grads = _run(cell, method, x32, h32, p32)
        assert error(out, ref[0]) < out_tol and error(h, ref[1]) < out_tol, method
        for a, b in zip(grads, ref[2]):
            assert error(a, b) < grad_tol, method
    with torch.no_grad():  # why chunks: one scan over all 4096 steps is far less accurate
        xp = cell.input_projection(x32, p32)
        whole = log_scan(*cell.log_coefficients(xp), h32, chunk=4096)
        assert error(whole, ref[0]) > 10 * 2 * CHUNK * eps


@settings(max_examples=15, deadline=None, derandomize=True)  # float tolerances: a fixed set in CI
@given(T=st.integers(1, 140), B=st.integers(1, 3), I=st.integers(1, 5), H=st.integers(1, 5),
       name=st.sampled_from(CELLS), method=st.sampled_from(METHODS), seed=st.integers(0, 99))
def test_scan_equals_the_loop_for_any_shape(T, B, I, H, name, method, seed):
    cell = make_cell(name, I, H)
    p = _params(cell, seed=seed)
    x, h0 = _data(cell, T, B, seed=seed + 1)
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)
    _assert_same(_run(cell, method, x, h0, p, mask), _run(cell, "autograd", x, h0, p, mask))


@pytest.mark.parametrize("T, chunk", [(1, None), (7, None), (12, 3), (13, 3), (13, 1), (13, 13),
                                      (13, 20), (100, 7)])
def test_chunked_scans_equal_the_step_by_step_loops(T, chunk):
    """lerp_scan and adjoint_scan (whole chunks, a left-over tail, one chunk, chunks of one
    step) against their recurrences stepped one by one; u includes 0 and 1 (a masked step,
    a full overwrite), which the chunk products must carry exactly."""
    gen = torch.Generator().manual_seed(T)
    u, target, dout = (torch.rand(T, 2, 3, generator=gen, dtype=F64) for _ in range(3))
    u[T // 2, 0], u[T // 3, 1] = 0.0, 1.0
    h0 = torch.randn(2, 3, generator=gen, dtype=F64)
    h, want = h0, []
    for t in range(T):
        h = h + u[t] * (target[t] - h)
        want.append(h)
    torch.testing.assert_close(lerp_scan(u, target, h0, chunk), torch.stack(want))
    dh, back = torch.zeros_like(h0), []
    for t in range(T - 1, -1, -1):
        dh = dout[t] + (1 - u[t + 1]) * dh if t + 1 < T else dout[t]
        back.append(dh)
    torch.testing.assert_close(adjoint_scan(dout, u, chunk), torch.stack(back[::-1]))


# ---- through rnnkit.Recurrent ----------------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
def test_layer_stacks_agree_across_backends(name):
    """2 layers, bidirectional, lengths, a negative initial state, batch_first."""
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 9, 4, dtype=F64)
    lengths = torch.tensor([9, 2, 6])
    hx = -torch.rand(4, 3, 5, dtype=F64) - 0.5
    ref = rnnkit.Recurrent(name, 4, 5, backend="autograd", **kw).double()
    results = {}
    for backend in ["auto", "scan", "bptt", "autograd"]:
        layer = rnnkit.Recurrent(name, 4, 5, backend=backend, **kw).double()
        layer.load_state_dict(ref.state_dict())
        assert layer.resolve_backend(x) == ("scan" if backend == "auto" else backend)
        out, h = layer(x, hx, lengths=lengths)
        grads = torch.autograd.grad(out.pow(2).sum() + h.sum(), list(layer.parameters()))
        results[backend] = (out, h, grads)
    assert (results["scan"][0][1, 2:] == 0).all()  # padded steps output zeros
    for got in results.values():
        _assert_same(got, results["autograd"])


def test_parameters_are_w_ih_and_b_ih_only():
    layer = rnnkit.Recurrent("minlstm", 7, 5, num_layers=2, bidirectional=True)
    names = {n for n, _ in layer.named_parameters()}
    assert names == {f"{w}_l{k}{s}" for w in ("weight_ih", "bias_ih") for k in (0, 1)
                     for s in ("", "_reverse")}
    assert layer.weight_ih_l1.shape == (15, 10)
    for name, G in [("mingru", 2), ("minlstm", 3)]:
        assert rnnkit.textbook_parameter_count(name, 7, 5) == G * 5 * (7 + 1)
        assert sum(q.numel() for q in rnnkit.Recurrent(name, 7, 5).parameters()) == G * 5 * 8


@pytest.mark.parametrize("name,gate,sign", [("mingru", 0, -1.0), ("minlstm", 0, 1.0)])
def test_forget_bias_and_chrono_reach_the_keep_gate(name, gate, sign):
    layer = rnnkit.Recurrent(name, 3, 4, forget_bias=2.0)
    b = layer.bias_ih_l0.detach().view(-1, 4)
    assert (b[gate] == sign * 2.0).all()
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(name, 3, 4, init="chrono", chrono_tmax=50)
    b = layer.bias_ih_l0.detach().view(-1, 4)
    keep = sign * b[gate]  # log U(1, 49): the state is kept for 1..49 steps at the start
    assert ((keep >= 0) & (keep <= math.log(49))).all()
    if name == "minlstm":
        torch.testing.assert_close(b[1], -b[0])  # i = -f: f' = f / (f + i) near 1


def test_clear_errors():
    with pytest.raises(ValueError, match="backend 'native' cannot run cell 'mingru'"):
        rnnkit.Recurrent("mingru", 3, 4, backend="native")
    with pytest.raises(ValueError, match="backend 'scan' cannot run cell 'lstm'"):
        rnnkit.Recurrent("lstm", 3, 4, backend="scan")
    with pytest.raises(ValueError, match="cell 'minlstm' has none.*init='default' or 'chrono'"):
        rnnkit.Recurrent("minlstm", 3, 4, init="orthogonal")
    with pytest.raises(ValueError, match="has no W_hh.*recurrent_dropout=0"):
        rnnkit.Recurrent("mingru", 3, 4, recurrent_dropout=0.1)
    cell = make_cell("mingru", 3, 4)
    with pytest.raises(ValueError, match="unknown scan method 'fast'"):
        run_scan(cell, torch.zeros(2, 1, 8), (torch.zeros(1, 4),), {}, method="fast")
