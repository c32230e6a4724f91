"""The compiled bptt loops (engine/loops.cpp) against the Python loops they replace.

Both run the same hand-derived steps; the compiled one fuses each step's elementwise work and
splits it over threads. Results must agree to rounding (float64: 1e-12) for every option the
layer passes down: kept or recomputed gates, masks from lengths, initial states, stacks in both
directions, any thread count and sizes that are no multiple of the vector width.
"""

import contextlib
import os
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.cpp_extension import is_ninja_available

import rnnkit
from rnnkit.engine import compiled

# torch builds with $CXX or c++ and ninja; without them rnnkit runs its Python loops instead
pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None or not is_ninja_available(),
    reason="no C++ compiler or ninja here: the Python loops run instead")
CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu", "rnn_sigmoid", "lstm_peephole", "lstm_cifg",
         "gru_cho", "mut1", "mut2", "mut3",
         "lstm_nofg", "nas", "lstm_layernorm", "gru_layernorm"]


def test_the_loops_build_where_there_is_a_compiler():
    assert compiled.ops() is not None


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_with_compiled_loops_takes_them(cell):
    c = rnnkit.cells.make_cell(cell, 3, 4)
    p = {k: torch.randn(s) for k, s in c.parameter_shapes().items()}
    assert c.compiled_loop and c.bptt_setup(p).get("compiled") is True
    with compiled.disabled():
        assert "compiled" not in c.bptt_setup(p)


def _run(m, x, state, lengths):
    out, final = m(x, state, lengths=lengths)
    final = final if isinstance(final, tuple) else (final,)
    loss = out.square().sum() + sum(f.sin().sum() for f in final)
    return [out, *final, *torch.autograd.grad(loss, [*m.parameters(), x])]


def _both(cell, T, B, I, H, dtype=torch.float64, recompute=True, lengths=None, layers=1,
          bidirectional=False, seed=0):
    torch.manual_seed(seed)
    recompute = recompute or not rnnkit.cells.cell_class(cell).can_keep
    m = rnnkit.Recurrent(cell, I, H, num_layers=layers, bidirectional=bidirectional,
                         backend="bptt", recompute=recompute).to(dtype)
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    n = layers * (2 if bidirectional else 1)
    h0 = torch.randn(n, B, H, dtype=dtype)
    two = rnnkit.cells.cell_class(cell).num_states == 2
    state = (h0, torch.randn(n, B, H, dtype=dtype)) if two else h0
    fast = _run(m, x, state, lengths)
    with compiled.disabled():
        slow = _run(m, x, state, lengths)
    return fast, slow


# layer normalisation divides by the spread of a few units (H = 7 here): the float32 rounding of
# the compiled loops' vectorised exp and tanh grows about ten times more through it, to 1e-5 of
# a gradient's largest entry after two layers (float64 agrees to 1e-13 as for every cell)
LOOSE_FLOAT32 = {"lstm_layernorm", "gru_layernorm"}


def _assert_close(fast, slow, dtype, cell=None):
    low = 1e-4 if cell in LOOSE_FLOAT32 else 1e-5
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": low,
                                                                          "atol": low}
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("recompute", [True, False])
@pytest.mark.parametrize("lengths", [None, [9, 4, 1]])
def test_compiled_loops_equal_the_python_loops(cell, dtype, recompute, lengths):
    lengths = None if lengths is None else torch.tensor(lengths)
    fast, slow = _both(cell, 9, 3, 5, 7, dtype, recompute, lengths, layers=2,
                       bidirectional=True)
    _assert_close(fast, slow, dtype, cell)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count_gives_the_same_numbers(cell, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fast, slow = _both(cell, 6, 5, 4, 37, recompute=False)  # 37: ragged column shares
    finally:
        torch.set_num_threads(old)
    _assert_close(fast, slow, torch.float64)


@settings(max_examples=25, deadline=None)
@given(cell=st.sampled_from(CELLS), T=st.integers(1, 8), B=st.integers(1, 5),
       I=st.integers(1, 6), H=st.integers(1, 20), recompute=st.booleans(),
       seed=st.integers(0, 100))
def test_compiled_loops_at_any_shape(cell, T, B, I, H, recompute, seed):
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(seed))
    fast, slow = _both(cell, T, B, I, H, recompute=recompute, lengths=lengths, seed=seed)
    _assert_close(fast, slow, torch.float64)


def test_the_environment_switches_them_off(monkeypatch):
    monkeypatch.setenv("RNNKIT_COMPILED", "0")
    assert compiled.ops() is None
    monkeypatch.delenv("RNNKIT_COMPILED")
    assert compiled.ops() is not None


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lengths", [None, [33, 20, 1]])
def test_the_compiled_scan_equals_the_python_scan(cell, dtype, lengths):
    """The minimal cells' sequential scan (engine/scan.py) against its compiled twin, with
    masks, initial states and a stack of two bidirectional layers."""
    torch.manual_seed(0)
    m = rnnkit.Recurrent(cell, 5, 19, num_layers=2, bidirectional=True, backend="scan")
    m = m.to(dtype)
    x = torch.randn(33, 3, 5, dtype=dtype, requires_grad=True)
    h0 = torch.randn(4, 3, 19, dtype=dtype)
    lengths = None if lengths is None else torch.tensor(lengths)
    fast = _run(m, x, h0, lengths)
    with compiled.disabled():
        slow = _run(m, x, h0, lengths)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                          "atol": 1e-5}
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, g, k", [(640, 96, 40), (37, 5, 3), (1, 8, 8)])
def test_weight_grad_equals_the_transposed_product(dtype, n, g, k):
    """loops.cpp's weight_grad (oneDNN's matmul where torch has it, at::mm otherwise) and
    matmul.weight_grad, which takes it once the loops are loaded, against d^T u."""
    from rnnkit.cells.matmul import weight_grad

    ops = compiled.ops()
    torch.manual_seed(0)
    d, u = torch.randn(n, g, dtype=dtype), torch.randn(n, k, dtype=dtype)
    tol = {"atol": 1e-4, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 0}
    torch.testing.assert_close(ops.weight_grad(d, u), d.t() @ u, **tol)
    torch.testing.assert_close(weight_grad(d, u), d.t() @ u, **tol)
    torch.testing.assert_close(weight_grad(d[:, 1:], u), d[:, 1:].t() @ u, **tol)  # strided


@pytest.mark.parametrize("cell", CELLS)
def test_compiled_loops_without_bias(cell):
    """bias=False: no bias gradient to sum in the loop, nothing folded into the projection."""
    torch.manual_seed(0)
    results = []
    for off in (False, True):
        torch.manual_seed(0)
        m = rnnkit.Recurrent(cell, 5, 8, bias=False, backend="bptt").double()
        x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
        with compiled.disabled() if off else contextlib.nullcontext():
            out, _ = m(x)
            results.append([out, *torch.autograd.grad(out.sin().sum(), [x, *m.parameters()])])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
