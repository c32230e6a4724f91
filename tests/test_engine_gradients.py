"""Every backend of every cell against the autograd reference, and gradcheck in float64."""

import pytest
import torch

import rnnkit
from rnnkit.cells import available, make_cell
from rnnkit.engine import run_sequence, supported_backends

OWN = [(c, b) for c in available() for b in ("bptt", "scan")
       if b in supported_backends(make_cell(c, 3, 3))]


def _params(cell, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(s, generator=g, dtype=dtype) - 0.5).requires_grad_()
            for k, s in cell.parameter_shapes().items()}


def _inputs(cell, T, B, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, cell.input_size, generator=g, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(B, cell.hidden_size, generator=g, dtype=dtype) * 0.5
                  for _ in range(cell.num_states))
    if cell.name.startswith("minlstm") or cell.name.startswith("mingru"):
        state = tuple(s.abs() + 0.1 for s in state)  # the log-space scan needs h > 0 with g
    return x, tuple(s.requires_grad_() for s in state)


@pytest.mark.parametrize("cell_name,backend", OWN)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(cell_name, backend, masked):
    for sizes in [(3, 4), (4, 4)]:
        cell = make_cell(cell_name, *sizes)
        p = _params(cell)
        x, state = _inputs(cell, T=5, B=3)
        mask = None
        if masked:
            mask = torch.arange(5).unsqueeze(1) < torch.tensor([5, 2, 4]).unsqueeze(0)
        names = list(p)

        def f(x, *tensors, cell=cell, names=names, mask=mask):
            st = tensors[: cell.num_states]
            pp = dict(zip(names, tensors[cell.num_states:]))
            out, final = run_sequence(cell, x, st, pp, backend, mask)
            return (out, *final)

        assert torch.autograd.gradcheck(f, (x, *state, *p.values()), atol=1e-6)


@pytest.mark.parametrize("cell_name,backend", OWN)
def test_matches_autograd_reference(cell_name, backend):
    cell = make_cell(cell_name, 6, 5)
    p = _params(cell, seed=3)
    x, state = _inputs(cell, T=7, B=4, seed=4)
    results = []
    for be in ("autograd", backend):
        out, final = run_sequence(cell, x, state, p, be)
        loss = out.pow(2).sum() + sum((s * (i + 2)).sum() for i, s in enumerate(final))
        grads = torch.autograd.grad(loss, [x, *state, *p.values()])
        results.append((out, final, grads))
    (o1, f1, g1), (o2, f2, g2) = results
    torch.testing.assert_close(o1, o2)
    for a, b in zip(f1, f2):
        torch.testing.assert_close(a, b)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell_name", available())
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_backends_agree(cell_name, bidirectional):
    """Whole stacks (2 layers, lengths, initial state) agree across every backend."""
    torch.manual_seed(0)
    ref = rnnkit.Recurrent(cell_name, 4, 4, num_layers=2, bidirectional=bidirectional,
                           backend="autograd").double()
    lengths = torch.tensor([6, 3, 5])
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    D = 2 if bidirectional else 1
    hx = tuple(torch.rand(2 * D, 3, 4, dtype=torch.float64) + 0.1
               for _ in range(ref.num_states))
    hx = hx if len(hx) > 1 else hx[0]
    outs = {}
    for be in supported_backends(ref.cells[0]):
        layer = rnnkit.Recurrent(cell_name, 4, 4, num_layers=2, bidirectional=bidirectional,
                                 backend=be).double()
        layer.load_state_dict(ref.state_dict())
        out, h = layer(x, hx, lengths=lengths)
        h = h if isinstance(h, tuple) else (h,)
        grads = torch.autograd.grad(out.sum() + sum(s.sum() for s in h), list(layer.parameters()))
        outs[be] = (out, h, grads)
    base = outs["autograd"]
    for be, (out, h, grads) in outs.items():
        torch.testing.assert_close(out, base[0], msg=f"{be} output")
        for a, b in zip(h, base[1]):
            torch.testing.assert_close(a, b, msg=f"{be} final state")
        for a, b in zip(grads, base[2]):
            torch.testing.assert_close(a, b, msg=f"{be} gradient")


KEEPING = ["lstm", "lstm_peephole", "lstm_cifg", "lstm_nofg", "gru", "gru_cho",
           "mut1", "mut2", "mut3", "lstm_layernorm", "gru_layernorm"]
# what the layer-normalised cells keep: (c,) W_hh h(t-1) and, kept only here, W_ih x
KEPT_LN = {"lstm_layernorm": ((4,), (16,), (16,)), "gru_layernorm": ((12,), (12,))}


@pytest.mark.parametrize("cell_name", KEEPING)
@pytest.mark.parametrize("masked", [False, True])
def test_keeping_the_gates_passes_gradcheck(cell_name, masked):
    """recompute=False: the forward keeps the activated gates and the backward reads them."""
    cell = make_cell(cell_name, 3, 4, recompute=False)
    assert cell.can_keep
    G = cell.gates
    lstm_like = cell_name.startswith("lstm")
    assert cell.saved_shapes() == KEPT_LN.get(cell_name, ((4,), (G, 4)) if lstm_like else ((16,),))
    p = _params(cell)
    x, state = _inputs(cell, T=5, B=3)
    mask = torch.arange(5).unsqueeze(1) < torch.tensor([5, 2, 4]).unsqueeze(0) if masked else None
    names = list(p)

    def f(x, *tensors):
        st, pp = tensors[: cell.num_states], dict(zip(names, tensors[cell.num_states:]))
        out, final = run_sequence(cell, x, st, pp, "bptt", mask)
        return (out, *final)

    assert torch.autograd.gradcheck(f, (x, *state, *p.values()), atol=1e-6)
