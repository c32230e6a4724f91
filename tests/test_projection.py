"""LSTM projections (``proj_size``, Sak et al. 2014) drop-in for torch.nn.LSTM's: the same
constructor argument, outputs, final states, gradients and state_dict keys."""

import io

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit

I, H, P, T, B = 4, 6, 3, 5, 2

OPTIONS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"batch_first": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"num_layers": 2, "bidirectional": True, "bias": False},
]


def make_pair(backend, dtype=torch.float64, seed=0, **opts):
    torch.manual_seed(seed)
    theirs = nn.LSTM(I, H, proj_size=P, dtype=dtype, **opts)
    ours = rnnkit.LSTM(I, H, proj_size=P, dtype=dtype, backend=backend, **opts)
    ours.load_state_dict(theirs.state_dict())  # strict: the same keys and shapes
    return ours, theirs


def inputs(opts, dtype=torch.float64, initial=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((B, T, I) if opts.get("batch_first") else (T, B, I), generator=g,
                    dtype=dtype)
    if not initial:
        return x, None
    n = opts.get("num_layers", 1) * (2 if opts.get("bidirectional") else 1)
    h0 = torch.randn(n, B, P, generator=g, dtype=dtype)
    c0 = torch.randn(n, B, H, generator=g, dtype=dtype)
    return x, (h0, c0)


def close(a, b, tol=1e-6):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol, (a - b).abs().max().item()


@pytest.mark.parametrize("backend", ["native", "autograd", "auto"])
@pytest.mark.parametrize("initial", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
                         or "default")
def test_outputs_and_states_equal_torch(backend, initial, opts):
    ours, theirs = make_pair(backend, **opts)
    x, hx = inputs(opts, initial=initial)
    out, (h, c) = ours(x, hx)
    want, (h_t, c_t) = theirs(x, hx)
    D = 2 if opts.get("bidirectional") else 1
    assert out.shape[-1] == D * P and h.shape[-1] == P and c.shape[-1] == H
    close(out, want)
    close(h, h_t)
    close(c, c_t)


@pytest.mark.parametrize("backend", ["native", "autograd"])
def test_float32_equals_torch(backend):
    opts = {"num_layers": 2, "bidirectional": True}
    ours, theirs = make_pair(backend, dtype=torch.float32, **opts)
    x, hx = inputs(opts, dtype=torch.float32, initial=True)
    for a, b in zip((ours(x, hx)[0], *ours(x, hx)[1]), (theirs(x, hx)[0], *theirs(x, hx)[1])):
        close(a, b)


@pytest.mark.parametrize("backend", ["native", "autograd"])
@pytest.mark.parametrize("opts", [{"num_layers": 2}, {"num_layers": 2, "bidirectional": True},
                                  {"bidirectional": True, "batch_first": True, "bias": False}],
                         ids=["2layers", "2layers-bi", "bi-bf-nobias"])
def test_gradients_equal_torch(backend, opts):
    ours, theirs = make_pair(backend, **opts)
    x, (h0, c0) = inputs(opts, initial=True)
    grads = []
    for layer in (ours, theirs):
        xs, h0s, c0s = (t.clone().requires_grad_() for t in (x, h0, c0))
        out, (h, c) = layer(xs, (h0s, c0s))
        w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        loss = (out * w).sum() + (h ** 2).sum() + (c * 0.5).sum()
        params = list(layer.parameters())
        grads.append(torch.autograd.grad(loss, [xs, h0s, c0s, *params]))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for a, b in zip(*grads):
        close(a, b)


@pytest.mark.parametrize("backend", ["native", "autograd"])
def test_lengths_and_packed_equal_torch(backend):
    opts = {"num_layers": 2, "bidirectional": True}
    ours, theirs = make_pair(backend, **opts)
    x, hx = inputs(opts, initial=True)
    lengths = torch.tensor([T, 3])
    want, (h_t, c_t) = theirs(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
    want, _ = nn.utils.rnn.pad_packed_sequence(want, total_length=T)
    out, (h, c) = ours(x, hx, lengths=lengths)
    close(out, want)
    close(h, h_t)
    close(c, c_t)


def test_unbatched_input():
    ours, theirs = make_pair("autograd", num_layers=2)
    x = torch.randn(T, I, dtype=torch.float64)
    hx = (torch.randn(2, P, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64))
    out, (h, c) = ours(x, hx)
    want, (h_t, c_t) = theirs(x, hx)
    close(out, want)
    close(h, h_t)
    close(c, c_t)


def test_state_dict_keys_and_loads_both_ways():
    opts = {"num_layers": 2, "bidirectional": True}
    ours = rnnkit.LSTM(I, H, proj_size=P, **opts)
    theirs = nn.LSTM(I, H, proj_size=P, **opts)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "weight_hr_l0" in ours.state_dict() and "weight_hr_l1_reverse" in ours.state_dict()
    assert ours.weight_hh_l1.shape == (4 * H, P) and ours.weight_ih_l1.shape == (4 * H, 2 * P)
    assert ours.weight_hr_l0.shape == (P, H)
    x = torch.randn(T, B, I)
    assert (ours(x)[0] - theirs(x)[0]).abs().max() > 1e-3  # independent initialisations
    theirs.load_state_dict(ours.state_dict())  # rnnkit -> torch (strict)
    close(ours(x)[0], theirs(x)[0])
    fresh = rnnkit.LSTM(I, H, proj_size=P, **opts)
    fresh.load_state_dict(nn.LSTM(I, H, proj_size=P, **opts).state_dict())  # torch -> rnnkit
    with pytest.raises(RuntimeError):  # a projection's weights do not fit a plain LSTM
        rnnkit.LSTM(I, H, **opts).load_state_dict(theirs.state_dict())


def test_recurrent_takes_proj_size_and_positional():
    layer = rnnkit.Recurrent("lstm", I, H, proj_size=P, backend="autograd")
    out, (h, c) = layer(torch.randn(T, B, I))
    assert out.shape == (T, B, P) and h.shape == (1, B, P) and c.shape == (1, B, H)
    lstm = rnnkit.LSTM(I, H, 1, True, False, 0.0, False, P)  # positional, as torch allows
    assert lstm.proj_size == P and "proj_size=3" in repr(lstm)


def test_auto_picks_native_or_autograd():
    lstm = rnnkit.LSTM(I, H, proj_size=P)
    x = torch.randn(T, B, I, requires_grad=True)  # training: auto would take bptt without proj
    assert lstm.resolve_backend(x) == "native"
    fused = rnnkit.LSTM(I, H, proj_size=P, bidirectional=True, fusion="sum")
    assert fused.resolve_backend(x) == "autograd"
    out, (h, c) = fused(x)
    assert out.shape == (T, B, P) and h.shape == (2, B, P) and c.shape == (2, B, H)
    out.sum().backward()
    assert fused.weight_hr_l0_reverse.grad is not None


def test_stateful_and_tbptt_run():
    lstm = rnnkit.LSTM(I, H, proj_size=P, stateful=True, tbptt=2)
    out, (h, c) = lstm(torch.randn(T, B, I))
    out2, _ = lstm(torch.randn(T, B, I))  # carries (h (1, B, P), c (1, B, H))
    assert out2.shape == (T, B, P)


def test_bad_combinations_are_clear_errors():
    with pytest.raises(ValueError, match="backend 'bptt' cannot run proj_size.*"
                                         "backend='auto' or 'autograd'"):
        rnnkit.LSTM(I, H, proj_size=P, backend="bptt")
    with pytest.raises(ValueError, match="backend 'scan' cannot run"):
        rnnkit.LSTM(I, H, proj_size=P, backend="scan")
    with pytest.raises(ValueError, match="smaller than hidden_size"):
        rnnkit.LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="proj_size must be an integer >= 0"):
        rnnkit.LSTM(I, H, proj_size=-1)
    with pytest.raises(ValueError, match="cell 'lstm' only"):
        rnnkit.Recurrent("gru", I, H, proj_size=P)
    with pytest.raises(ValueError, match="cell 'lstm' only"):
        rnnkit.Recurrent("lstm_peephole", I, H, proj_size=P)
    for cls in (rnnkit.GRU, rnnkit.RNN):  # as torch: only LSTM has projections
        with pytest.raises(ValueError, match="only supported for LSTM"):
            cls(I, H, proj_size=P)
    lstm = rnnkit.LSTM(I, H, proj_size=P)
    x = torch.randn(T, B, I)
    with pytest.raises(ValueError, match=r"h_0 has shape \(1, 2, 6\), expected \(1, 2, 3\).*"
                                         "proj_size"):
        lstm(x, (torch.zeros(1, B, H), torch.zeros(1, B, H)))
    with pytest.raises(ValueError, match=r"c_0 has shape \(1, 2, 3\), expected \(1, 2, 6\)"):
        lstm(x, (torch.zeros(1, B, P), torch.zeros(1, B, P)))


def test_pickled_layer_loads_with_safe_globals():
    lstm = rnnkit.LSTM(I, H, 2, proj_size=P, bidirectional=True)
    buf = io.BytesIO()
    torch.save(lstm, buf)
    buf.seek(0)
    with torch.serialization.safe_globals(rnnkit.safe_globals()):
        back = torch.load(buf)
    x = torch.randn(T, B, I)
    assert back.proj_size == P
    close(back(x)[0], lstm(x)[0], 0.0)
