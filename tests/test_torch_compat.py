"""rnnkit.RNN/LSTM/GRU are drop-in for torch.nn.RNN/LSTM/GRU: same arguments, state_dict keys,
outputs and gradients (float32, 1e-5 relative) for every option and every backend."""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit

# cell name -> (rnnkit class, torch class, extra constructor keywords)
KINDS = {
    "rnn_tanh": (rnnkit.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, nn.LSTM, {}),
    "gru": (rnnkit.GRU, nn.GRU, {}),
}
BACKENDS = ("native", "bptt", "autograd")
I, H = 4, 5

OPTIONS = [
    {},
    {"num_layers": 2},
    {"num_layers": 3, "bias": False},
    {"batch_first": True},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"num_layers": 3, "dropout": 0.5},  # eval mode: dropout is off, as in torch
    {"num_layers": 2, "bidirectional": True, "bias": False},
]


def make_pair(kind, backend, input_size=I, hidden_size=H, seed=0, **opts):
    ours_cls, theirs_cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    theirs = theirs_cls(input_size, hidden_size, **extra, **opts)
    ours = ours_cls(input_size, hidden_size, **extra, **opts, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    return ours.eval(), theirs.eval()


def make_state(kind, n, batch, hidden=H, seed=1):
    """An initial state of shape (n, batch, hidden), or (n, hidden) for batch None."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, hidden) if batch is None else (n, batch, hidden)
    parts = [torch.randn(shape, generator=g) * 0.5 for _ in range(2 if kind == "lstm" else 1)]
    return tuple(parts) if kind == "lstm" else parts[0]


def outputs_and_grads(module, x, hx=None, make_input=None):
    """Forward, then gradients of a fixed random weighting of (output, final states) w.r.t.
    x, every part of hx and every parameter (by name)."""
    x = x.detach().clone().requires_grad_()
    hx_parts = [] if hx is None else list(hx if isinstance(hx, tuple) else (hx,))
    hx_parts = [h.detach().clone().requires_grad_() for h in hx_parts]
    arg = None if hx is None else (tuple(hx_parts) if isinstance(hx, tuple) else hx_parts[0])
    out, h_n = module(make_input(x) if make_input else x, arg)
    out_t = out.data if isinstance(out, PackedSequence) else out
    states = list(h_n) if isinstance(h_n, tuple) else [h_n]
    g = torch.Generator().manual_seed(7)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in [out_t, *states])
    names = [n for n, _ in module.named_parameters()]
    grads = torch.autograd.grad(loss, [x, *hx_parts, *module.parameters()])
    return out, states, dict(zip(["input", *[f"hx{i}" for i in range(len(hx_parts))], *names],
                                 grads))


def assert_rel(actual, expected, what, tol=1e-5, floor=0.0):
    """Equal within ``tol`` relative to the size of ``expected`` (elementwise), or of ``floor``
    if larger: a gradient that is a sum of many terms which cancel (a bias of a 1-unit layer)
    carries float32 rounding of the size of its terms, not of the small sum."""
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * max(scale, floor, 1e-3),
                               msg=lambda m: f"{what}: {m}")


def assert_match(ours, theirs):
    (o1, s1, g1), (o2, s2, g2) = ours, theirs
    if isinstance(o2, PackedSequence):
        assert isinstance(o1, PackedSequence)
        for a, b in zip(o1[1:], o2[1:]):
            assert (a is None and b is None) or torch.equal(a, b), "PackedSequence layout"
        o1, o2 = o1.data, o2.data
    assert_rel(o1, o2, "output")
    assert len(s1) == len(s2)
    for a, b in zip(s1, s2):
        assert_rel(a, b, "final state")
    assert g1.keys() == g2.keys()
    # the terms of every gradient are about as large as the largest gradient of the model
    floor = max(float(g.abs().max()) for g in g2.values() if g.numel())
    for name in g2:
        assert_rel(g1[name], g2[name], f"gradient of {name}", floor=floor)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
                         or "default")
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "hx"])
def test_matches_torch(kind, backend, opts, with_state):
    ours, theirs = make_pair(kind, backend, **opts)
    T, B = 6, 3
    x = torch.randn((B, T, I) if opts.get("batch_first") else (T, B, I))
    D = 2 if opts.get("bidirectional") else 1
    hx = make_state(kind, opts.get("num_layers", 1) * D, B) if with_state else None
    assert_match(outputs_and_grads(ours, x, hx), outputs_and_grads(theirs, x, hx))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opts", [{}, {"num_layers": 2, "bidirectional": True}],
                         ids=["uni", "bi2"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "hx"])
def test_unbatched_input(kind, backend, opts, with_state):
    ours, theirs = make_pair(kind, backend, **opts)
    x = torch.randn(7, I)
    D = 2 if opts.get("bidirectional") else 1
    hx = make_state(kind, opts.get("num_layers", 1) * D, None) if with_state else None
    result = outputs_and_grads(ours, x, hx)
    assert result[0].shape == (7, D * H)
    assert_match(result, outputs_and_grads(theirs, x, hx))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("opts", [{}, {"num_layers": 2, "bidirectional": True},
                                  {"batch_first": True, "num_layers": 2}],
                         ids=["uni", "bi2", "batch_first"])
def test_packed_sequence(kind, backend, enforce_sorted, opts):
    ours, theirs = make_pair(kind, backend, **opts)
    lengths = torch.tensor([6, 5, 5, 2]) if enforce_sorted else torch.tensor([3, 6, 1, 5])
    x = torch.randn(6, 4, I)  # padded, time-major
    D = 2 if opts.get("bidirectional") else 1
    hx = make_state(kind, opts.get("num_layers", 1) * D, 4)

    def pack(x):
        return pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)

    assert_match(outputs_and_grads(ours, x, hx, pack), outputs_and_grads(theirs, x, hx, pack))


@settings(max_examples=15, deadline=None, derandomize=True)  # float tolerances: a fixed set in CI
@given(kind=st.sampled_from(sorted(KINDS)), backend=st.sampled_from(BACKENDS),
       T=st.integers(1, 6), B=st.integers(1, 4), input_size=st.integers(1, 5),
       hidden_size=st.integers(1, 5), num_layers=st.integers(1, 3),
       bidirectional=st.booleans(), batch_first=st.booleans(), bias=st.booleans())
@example(kind="rnn_tanh", backend="bptt", T=6, B=4, input_size=4, hidden_size=1,
         num_layers=3, bidirectional=True, batch_first=True, bias=True)  # once too strict
def test_matches_torch_over_shapes(kind, backend, T, B, input_size, hidden_size, num_layers,
                                   bidirectional, batch_first, bias):
    opts = {"num_layers": num_layers, "bidirectional": bidirectional,
            "batch_first": batch_first, "bias": bias}
    ours, theirs = make_pair(kind, backend, input_size, hidden_size, **opts)
    x = torch.randn((B, T, input_size) if batch_first else (T, B, input_size))
    hx = make_state(kind, num_layers * (2 if bidirectional else 1), B, hidden_size)
    assert_match(outputs_and_grads(ours, x, hx), outputs_and_grads(theirs, x, hx))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_train_mode_dropout_native_is_torch_exactly(kind, batch_first, packed):
    """Same seed, same kernel: the dropout masks between layers are torch's own."""
    ours, theirs = make_pair(kind, "native", num_layers=3, dropout=0.5, batch_first=batch_first)
    ours.train(), theirs.train()
    x = torch.randn((4, 6, I) if batch_first else (6, 4, I))
    if packed:
        x = pack_padded_sequence(x, torch.tensor([6, 3, 5, 2]), batch_first=batch_first,
                                 enforce_sorted=False)
    results = []
    for module in (ours, theirs):
        torch.manual_seed(123)
        out, h_n = module(x)
        results.append((out.data if packed else out, h_n))
    (o1, h1), (o2, h2) = results
    assert torch.equal(o1, o2)
    for a, b in zip(h1 if kind == "lstm" else (h1,), h2 if kind == "lstm" else (h2,)):
        assert torch.equal(a, b)
    torch.manual_seed(124)
    assert not torch.equal(ours(x)[0].data if packed else ours(x)[0], o1)  # dropout is on


@pytest.mark.parametrize("backend", ["bptt", "autograd"])
def test_train_mode_dropout_own_engines(backend):
    """Own engines draw their own masks: dropout between layers is active in training (the
    output differs from eval, and repeats under the same seed), absent in eval."""
    ours, theirs = make_pair("lstm", backend, num_layers=2, dropout=0.5)
    x = torch.randn(5, 3, I)
    assert_rel(ours(x)[0], theirs(x)[0], "eval output")
    ours.train()
    torch.manual_seed(5)
    a = ours(x)[0]
    torch.manual_seed(5)
    b = ours(x)[0]
    assert torch.equal(a, b)
    assert (a - theirs(x)[0]).abs().max() > 1e-3


# ---- constructor and state_dict ---------------------------------------------------------------
POSITIONAL = {
    "rnn": (rnnkit.RNN, nn.RNN, (4, 5, 2, "relu", False, True, 0.25, True)),
    "lstm": (rnnkit.LSTM, nn.LSTM, (4, 5, 2, False, True, 0.25, True, 0)),
    "gru": (rnnkit.GRU, nn.GRU, (4, 5, 2, False, True, 0.25, True)),
}
ATTRIBUTES = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional")


@pytest.mark.parametrize("kind", POSITIONAL)
def test_positional_constructor_and_keys(kind):
    ours_cls, theirs_cls, args = POSITIONAL[kind]
    ours, theirs = ours_cls(*args), theirs_cls(*args)
    for attr in ATTRIBUTES + (("nonlinearity",) if kind == "rnn" else ()):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert a.shape == b.shape, name


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_both_ways(kind):
    ours_cls, theirs_cls, extra = KINDS[kind]
    opts = {"num_layers": 2, "bidirectional": True, **extra}
    ours, theirs = ours_cls(I, H, **opts), theirs_cls(I, H, **opts)
    x = torch.randn(5, 2, I)
    assert (ours(x)[0] - theirs(x)[0]).abs().max() > 1e-3  # independent initialisations
    theirs.load_state_dict(ours.state_dict())  # rnnkit -> torch (strict)
    assert_rel(ours(x)[0], theirs(x)[0], "rnnkit -> torch")
    fresh = ours_cls(I, H, **opts)
    fresh.load_state_dict(theirs.state_dict())  # torch -> rnnkit (strict)
    assert_rel(fresh(x)[0], theirs(x)[0], "torch -> rnnkit")


def test_torch_idioms_work():
    """Calls that code written for torch.nn.LSTM makes."""
    lstm = rnnkit.LSTM(input_size=I, hidden_size=H, num_layers=1, bias=True, batch_first=True,
                       dropout=0.0, bidirectional=False, proj_size=0, device="cpu",
                       dtype=torch.float64)
    lstm.flatten_parameters()
    assert lstm.weight_ih_l0.dtype == torch.float64
    out, (h, c) = lstm(torch.randn(2, 3, I, dtype=torch.float64))
    assert out.shape == (2, 3, H) and h.shape == c.shape == (1, 2, H)


def test_proj_size_is_for_lstm_only():  # projections themselves: tests/test_projection.py
    assert rnnkit.LSTM(I, H, 1, True, False, 0.0, False, 2).proj_size == 2  # positional
    for cls in (rnnkit.GRU, rnnkit.RNN):  # as torch: only LSTM has projections
        with pytest.raises(ValueError, match="only supported for LSTM"):
            cls(I, H, proj_size=2)
    rnnkit.GRU(I, H, proj_size=0)  # the default, spelled out, is fine
