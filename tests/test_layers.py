"""The layer options beyond torch.nn's: lengths, fusion, stateful carry, truncated BPTT,
recurrent dropout, initialisation schemes and the parameter summary."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.layers.summary import parameter_counts
from test_torch_compat import (
    KINDS,
    assert_match,
    assert_rel,
    make_pair,
    make_state,
    outputs_and_grads,
)

I, H = 4, 5
BACKENDS = ("native", "bptt", "autograd")


def states_of(h_n):
    return list(h_n) if isinstance(h_n, tuple) else [h_n]


def twin(layer: rnnkit.Recurrent, **changes) -> rnnkit.Recurrent:
    """A layer like ``layer`` with some options changed and the same weights."""
    opts = {"num_layers": layer.num_layers, "bias": layer.bias, "batch_first": layer.batch_first,
            "bidirectional": layer.bidirectional, "backend": layer.backend,
            "fusion": layer.fusion, **changes}
    other = rnnkit.Recurrent(layer.mode, layer.input_size, layer.hidden_size, **opts)
    other.load_state_dict(layer.state_dict())
    return other


# ---- variable lengths -------------------------------------------------------------------------
class WithLengths(nn.Module):
    """ours(x, hx, lengths=...) and torch's packed run, both as module(x, hx) on padded x."""

    def __init__(self, module, lengths, pack):
        super().__init__()
        self.module, self.lengths, self.pack = module, lengths, pack

    def forward(self, x, hx):
        if not self.pack:
            return self.module(x, hx, lengths=self.lengths)
        bf = self.module.batch_first
        out, h_n = self.module(pack_padded_sequence(x, self.lengths, batch_first=bf,
                                                    enforce_sorted=False), hx)
        T = x.shape[1 if bf else 0]
        return pad_packed_sequence(out, batch_first=bf, total_length=T)[0], h_n


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opts", [{"num_layers": 2}, {"num_layers": 2, "bidirectional": True},
                                  {"bidirectional": True, "batch_first": True}],
                         ids=["uni2", "bi2", "bi_batch_first"])
def test_lengths_match_torch_packed(kind, backend, opts):
    ours, theirs = make_pair(kind, backend, **opts)
    lengths = torch.tensor([3, 7, 1, 5])
    bf = opts.get("batch_first", False)
    x = torch.randn((4, 7, I) if bf else (7, 4, I))
    D = 2 if opts.get("bidirectional") else 1
    hx = make_state(kind, opts.get("num_layers", 1) * D, 4)
    result = outputs_and_grads(WithLengths(ours, lengths, pack=False), x, hx)
    assert_match(result, outputs_and_grads(WithLengths(theirs, lengths, pack=True), x, hx))
    out = result[0] if bf else result[0].transpose(0, 1)
    for b, L in enumerate(lengths.tolist()):
        assert out[b, L:].abs().sum() == 0  # zeros at padded steps


# ---- bidirectional fusion ---------------------------------------------------------------------
def manual_fused(layer, x, lengths):
    """Each sequence alone, each layer as two unidirectional torch.nn runs (forward, and on the
    reversed sequence), joined by deck 002's rule."""
    outs, finals = [], [[] for _ in range(2 * layer.num_layers)]
    for b, L in enumerate(lengths.tolist()):
        seq = x[:L, b]
        for k in range(layer.num_layers):
            directions = []
            for d, sfx in enumerate(("", "_reverse")):
                uni = nn.LSTM(seq.shape[-1], layer.hidden_size)
                uni.load_state_dict({f"{n}_l0": getattr(layer, f"{n}_l{k}{sfx}")
                                     for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
                o, (h, c) = uni(seq.flip(0) if d else seq)
                directions.append(o.flip(0) if d else o)
                finals[2 * k + d].append((h[0], c[0]))
            if layer.fusion == "sum":
                seq = directions[0] + directions[1]
            else:
                seq = F.linear(torch.cat(directions, -1), getattr(layer, f"fusion_weight_l{k}"),
                               getattr(layer, f"fusion_bias_l{k}"))
        outs.append(F.pad(seq, (0, 0, 0, x.shape[0] - L)))
    h_n = torch.stack([torch.stack([h for h, _ in f]) for f in finals])
    c_n = torch.stack([torch.stack([c for _, c in f]) for f in finals])
    return torch.stack(outs, 1), (h_n, c_n)


@pytest.mark.parametrize("fusion", ["sum", "linear"])
@pytest.mark.parametrize("backend", ["auto", "bptt", "autograd"])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_fusion_matches_two_unidirectional_runs(fusion, backend, use_lengths):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, 2, bidirectional=True, fusion=fusion, backend=backend)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("fusion"):
                p.normal_()  # away from the initial mean of the two directions
    x = torch.randn(6, 3, I)
    lengths = torch.tensor([6, 2, 4]) if use_lengths else torch.tensor([6, 6, 6])
    out, (h, c) = layer(x, lengths=lengths if use_lengths else None)
    assert out.shape == (6, 3, H)
    ref_out, (ref_h, ref_c) = manual_fused(layer, x, lengths)
    assert_rel(out, ref_out, "output")
    assert_rel(h, ref_h, "h_n")
    assert_rel(c, ref_c, "c_n")


def test_fusion_linear_starts_as_the_mean_and_counts_in_state_dict():
    layer = rnnkit.GRU(I, H, bidirectional=True, fusion="linear")
    concat = rnnkit.GRU(I, H, bidirectional=True)
    concat.load_state_dict({k: v for k, v in layer.state_dict().items()
                            if not k.startswith("fusion")})
    x = torch.randn(5, 2, I)
    both = concat(x)[0]
    assert_rel(layer(x)[0], (both[..., :H] + both[..., H:]) / 2, "mean of directions")
    assert {"fusion_weight_l0", "fusion_bias_l0"} <= set(layer.state_dict())


def test_native_refuses_fusion_and_auto_falls_back():
    with pytest.raises(ValueError, match="concat only.*use backend='auto' or 'bptt'"):
        rnnkit.LSTM(I, H, bidirectional=True, fusion="sum", backend="native")
    layer = rnnkit.LSTM(I, H, bidirectional=True, fusion="sum")
    x = torch.randn(3, 2, I)
    assert layer.resolve_backend(x) == "bptt"
    with torch.no_grad():  # without fusion torch's kernel can run it (inference: it does)
        assert rnnkit.LSTM(I, H, bidirectional=True).resolve_backend(x) == "native"


# ---- stateful carry ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_stateful_equals_one_long_call(kind, backend):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(kind, I, H, num_layers=2, batch_first=True, backend=backend,
                             stateful=True)
    ref = twin(layer, stateful=False)
    x = torch.randn(3, 10, I, requires_grad=True)
    out1, _ = layer(x[:, :4])
    out2, h2 = layer(x[:, 4:])
    full, h_full = ref(x)
    assert_rel(torch.cat([out1, out2], 1), full, "carried output")
    for a, b in zip(states_of(h2), states_of(h_full)):
        assert_rel(a, b, "carried final state")
    # the carry is detached: the second call's loss reaches no earlier input
    (grad,) = torch.autograd.grad(out2.sum(), x)
    assert grad[:, :4].abs().max() == 0 and grad[:, 4:].abs().max() > 0
    # an explicit hx wins over the carry; reset_state() forgets
    hx = make_state(kind, 2, 3)
    assert_rel(layer(x[:, 4:], hx)[0], ref(x[:, 4:], hx)[0], "explicit hx")
    layer.reset_state()
    assert_rel(layer(x[:, :4])[0], out1, "after reset_state")


def test_stateful_batch_size_change_is_an_error():
    layer = rnnkit.GRU(I, H, stateful=True)
    layer(torch.randn(5, 3, I))
    with pytest.raises(ValueError, match="batch size 3.*batch of 2.*reset_state"):
        layer(torch.randn(5, 2, I))
    layer.reset_state()
    assert layer(torch.randn(5, 2, I))[1].shape == (1, 2, H)
    layer(torch.randn(5, 2, I), torch.zeros(1, 2, H))  # an explicit hx is always fine


def test_stateful_unbatched_and_lengths():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, stateful=True)
    ref = twin(layer)
    x = torch.randn(8, I)
    out = torch.cat([layer(x[:5])[0], layer(x[5:])[0]])
    assert_rel(out, ref(x)[0], "unbatched carry")
    layer.reset_state()
    # with lengths, each sequence carries the state of its own last valid step
    x1, x2 = torch.randn(6, 2, I), torch.randn(4, 2, I)
    _, (h, c) = layer(x1, lengths=torch.tensor([6, 3]))
    assert_rel(h[:, 1], ref(x1[:3, 1:])[1][0][:, 0], "h_n of the short sequence")
    assert_rel(layer(x2)[0], ref(x2, (h, c))[0], "carried into the next call")


# ---- truncated BPTT ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_tbptt_forward_and_gradients(kind, backend):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(kind, I, H, num_layers=2, backend=backend, tbptt=3)
    ref = twin(layer, tbptt=0)
    x = torch.randn(8, 2, I, requires_grad=True)
    hx = make_state(kind, 2, 2)
    hx_parts = [h.requires_grad_() for h in states_of(hx)]
    out, h_n = layer(x, hx)
    full, h_full = ref(x, hx)
    assert_rel(out, full, "tbptt forward")
    for a, b in zip(states_of(h_n), states_of(h_full)):
        assert_rel(a, b, "tbptt final state")

    # reference: the untruncated layer in a manual loop that detaches every 3 steps
    outs, state = [], hx
    for s in range(0, 8, 3):
        if s:
            state = tuple(t.detach() for t in state) if kind == "lstm" else state.detach()
        o, state = ref(x[s:s + 3], state)
        outs.append(o)
    manual = torch.cat(outs)
    w = torch.randn(out.shape)
    ours = torch.autograd.grad((out * w).sum() + states_of(h_n)[-1].sum(),
                               [x, *hx_parts, *layer.parameters()])
    theirs = torch.autograd.grad((manual * w).sum() + states_of(state)[-1].sum(),
                                 [x, *hx_parts, *ref.parameters()])
    for a, b in zip(ours, theirs):
        assert_rel(a, b, "tbptt gradient")
    # a loss on the final state alone still reaches the last chunk's inputs
    (grad,) = torch.autograd.grad(states_of(layer(x, hx)[1])[0].sum(), x)
    assert grad[6:].abs().max() > 0 and grad[:6].abs().max() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_tbptt_cuts_gradients_at_chunk_boundaries(backend):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, backend=backend, tbptt=4)
    x = torch.randn(10, 2, I, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[0][-1].sum(), x)
    assert grad[:8].abs().max() == 0  # steps 0..7 lie in earlier chunks
    assert grad[8:].abs().min() > 0
    (full,) = torch.autograd.grad(twin(layer, tbptt=0)(x)[0][-1].sum(), x)
    assert full[0].abs().max() > 0  # without truncation the first step is reached


@pytest.mark.parametrize("backend", ["auto", "bptt", "autograd"])
def test_tbptt_with_lengths(backend):
    torch.manual_seed(0)
    layer = rnnkit.GRU(I, H, 2, backend=backend, tbptt=2)
    ref = twin(layer, tbptt=0)
    x, lengths = torch.randn(7, 3, I), torch.tensor([7, 2, 5])
    out, h = layer(x, lengths=lengths)
    ref_out, ref_h = ref(x, lengths=lengths)
    assert_rel(out, ref_out, "output")
    assert_rel(h, ref_h, "h_n")
    assert layer.resolve_backend(x, lengths) != "native"


# ---- weight drop (DropConnect on W_hh's columns: recurrent_dropout= before issue 16) ---------
def copying_relu_rnn(backend, p, **kw):
    """h(t) = relu(W_hh h(t-1)) with W_hh = I and no input: the state shows the mask."""
    layer = rnnkit.RNN(3, 64, 1, "relu", backend=backend, weight_drop=p, **kw)
    with torch.no_grad():
        layer.weight_ih_l0.zero_(), layer.bias_ih_l0.zero_(), layer.bias_hh_l0.zero_()
        layer.weight_hh_l0.copy_(torch.eye(64))
    return layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tbptt", [0, 2])
def test_weight_drop_drops_the_same_units_every_step(backend, tbptt):
    torch.manual_seed(0)
    p = 0.5
    layer = copying_relu_rnn(backend, p, tbptt=tbptt).train()
    h0 = torch.ones(1, 4, 64)
    out, _ = layer(torch.zeros(6, 4, 3), h0)
    kept = out[0] != 0
    assert 0 < kept.sum() < kept.numel()
    for t in range(6):  # h(t) = h0 * (mask / (1 - p))^(t+1): same units, scaled to keep the mean
        expected = kept.float() * (1 / (1 - p)) ** (t + 1)
        torch.testing.assert_close(out[t], expected)
    assert (kept == kept[0]).all()  # one mask per call, shared by the batch
    layer.eval()
    torch.testing.assert_close(layer(torch.zeros(6, 4, 3), h0)[0], h0.expand(6, 4, 64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_drop_preserves_the_expectation(backend):
    torch.manual_seed(0)
    layer = copying_relu_rnn(backend, 0.3).train()
    h0 = torch.ones(1, 1, 64)
    mean = torch.stack([layer(torch.zeros(1, 1, 3), h0)[0] for _ in range(400)]).mean(0)
    assert abs(float(mean.detach().mean()) - 1) < 0.03  # over 64 units x 400 draws
    assert (mean - 1).abs().max() < 0.25  # and unit by unit (std about 0.033 here)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_drop_off_in_eval(backend):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, 2, backend=backend, weight_drop=0.5).eval()
    x = torch.randn(5, 2, I)
    assert_rel(layer(x)[0], twin(layer, weight_drop=0.0)(x)[0], "eval output")
    layer.train()
    assert (layer(x)[0] - twin(layer)(x)[0]).abs().max() > 1e-3


# ---- initialisation ---------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "lstm_peephole", "gru_cho"])
def test_orthogonal_init(cell):
    layer = rnnkit.Recurrent(cell, 3, 6, num_layers=2, bidirectional=True, init="orthogonal")
    for name, w in layer.named_parameters():
        if name.startswith("weight_hh"):
            for block in w.detach().split(6):
                torch.testing.assert_close(block @ block.t(), torch.eye(6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_identity_init_irnn_copies_the_state(backend):
    layer = rnnkit.RNN(3, 8, 1, "relu", init="identity", backend=backend, bidirectional=True)
    assert torch.equal(layer.weight_hh_l0_reverse, torch.eye(8))
    assert layer.weight_ih_l0.abs().max() < 0.01  # small input weights (std 0.001)
    h0 = torch.rand(2, 4, 8)
    out, h_n = layer(torch.zeros(20, 4, 3), h0)
    torch.testing.assert_close(out, torch.cat([h0[0], h0[1]], -1).expand(20, 4, 16))
    torch.testing.assert_close(h_n, h0)


def _gate_bias(layer, gate, sfx="_l0"):
    cell = layer.cells[0]
    k = cell.gate_names.index(gate)
    rows = slice(k * cell.hidden_size, (k + 1) * cell.hidden_size)
    return (getattr(layer, "bias_ih" + sfx) + getattr(layer, "bias_hh" + sfx))[rows].detach()


def test_chrono_init_lstm():
    layer = rnnkit.LSTM(3, 200, bidirectional=True, init="chrono", chrono_tmax=50)
    for sfx in ("_l0", "_l0_reverse"):
        bf = _gate_bias(layer, "f", sfx)
        assert bf.min() >= 0 and bf.max() <= math.log(49)
        assert bf.max() > 0.8 * math.log(49) and bf.std() > 0.3  # spread, not constant
        torch.testing.assert_close(_gate_bias(layer, "i", sfx), -bf)


def test_chrono_init_gru_keeps_by_z():
    layer = rnnkit.GRU(3, 100, init="chrono")
    bz = _gate_bias(layer, "z")
    assert bz.min() >= 0 and bz.max() <= math.log(99) and bz.std() > 0.3


@pytest.mark.parametrize("kind,gate", [("lstm", "f"), ("gru", "z"), ("lstm_peephole", "f")])
def test_forget_bias(kind, gate):
    layer = rnnkit.Recurrent(kind, 3, 5, num_layers=2, forget_bias=1.0)
    for sfx in ("_l0", "_l1"):
        torch.testing.assert_close(_gate_bias(layer, gate, sfx), torch.ones(5))
    other = [g for g in layer.cells[0].gate_names if g != gate][0]
    assert (_gate_bias(layer, other) != 1).all()  # only the forget gate is set


@pytest.mark.parametrize("kwargs,match", [
    ({"cell": "rnn_tanh", "forget_bias": 1.0}, "forget_bias needs a forget/keep gate"),
    ({"cell": "lstm_nofg", "forget_bias": 1.0}, "cell 'lstm_nofg' .* has none: leave "
                                                 "forget_bias out, or use a cell with a forget"),
    ({"cell": "rnn_tanh", "init": "chrono"}, "chrono.*needs a forget/keep gate"),
    ({"cell": "lstm", "init": "chrono", "chrono_tmax": 1}, "chrono_tmax .* >= 2"),
    ({"cell": "lstm", "bias": False, "forget_bias": 1.0}, "forget_bias needs.*biases"),
    ({"cell": "lstm", "init": "identity"}, "identity.*single-gate Elman cells"),
    ({"cell": "lstm", "init": "xavier"}, "unknown init 'xavier'"),
])
def test_init_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnnkit.Recurrent(input_size=3, hidden_size=4, **kwargs)


# ---- parameter summary ------------------------------------------------------------------------
@pytest.mark.parametrize("n,m", [(1, 1), (10, 20), (64, 128), (300, 7)])
def test_textbook_closed_forms(n, m):
    assert rnnkit.textbook_parameter_count("lstm", n, m) == 4 * m * (n + m + 1)
    assert rnnkit.textbook_parameter_count("gru", n, m) == 3 * m * (n + m + 1)
    assert rnnkit.textbook_parameter_count("rnn_tanh", n, m) == m * (n + m + 1)
    assert rnnkit.textbook_parameter_count("lstm", n, m, bias=False) == 4 * m * (n + m)
    torch_count = sum(p.numel() for p in nn.LSTM(n, m).parameters())
    assert torch_count == 4 * m * (n + m + 2)


class Tagger(nn.Module):
    def __init__(self, vocab, n, m, layers, bidirectional, lstm_cls=rnnkit.LSTM):
        super().__init__()
        self.embed = nn.Embedding(vocab, n)
        self.rnn = lstm_cls(n, m, layers, bidirectional=bidirectional)
        self.head = nn.Linear(m * (2 if bidirectional else 1), vocab)


@pytest.mark.parametrize("n,m,layers,bidirectional", [(10, 20, 1, False), (8, 16, 2, False),
                                                      (8, 16, 3, True), (5, 3, 2, True)])
@pytest.mark.parametrize("lstm_cls", [rnnkit.LSTM, nn.LSTM])
def test_parameter_counts_of_a_model(n, m, layers, bidirectional, lstm_cls):
    model = Tagger(50, n, m, layers, bidirectional, lstm_cls)
    D = 2 if bidirectional else 1
    inputs = [n] + [D * m] * (layers - 1)
    textbook = sum(D * 4 * m * (k + m + 1) for k in inputs)
    rows = {r.name: r for r in parameter_counts(model)}
    assert list(rows) == ["embed", "rnn", "head"]
    assert rows["rnn"].textbook == textbook
    assert rows["rnn"].parameters == textbook + layers * D * 4 * m  # torch's second bias
    assert rows["embed"].parameters == rows["embed"].textbook == 50 * n
    table = rnnkit.parameter_summary(model)
    total = sum(p.numel() for p in model.parameters())
    assert f"{total:,}" in table.splitlines()[-1]
    assert f"{textbook:,}" in next(line for line in table.splitlines() if line.startswith("rnn"))


def test_summary_counts_shared_and_fusion_parameters():
    model = nn.Sequential(nn.Embedding(30, 6), rnnkit.GRU(6, 6, bidirectional=True,
                                                           fusion="linear"), nn.Linear(6, 30))
    model[2].weight = model[0].weight  # tied embeddings: counted once
    rows = parameter_counts(model)
    assert sum(r.parameters for r in rows) == sum(p.numel() for p in model.parameters())
    gru = next(r for r in rows if r.kind == "GRU")
    assert gru.textbook == 2 * 3 * 6 * (6 + 6 + 1) + 6 * 12 + 6  # + the fusion W and b


def test_auto_picks_bptt_where_it_trains_faster_and_matches_torch():
    """Training on the CPU runs on bptt where it was measured faster (BENCHMARKS.md): with its
    loops compiled, the LSTM, GRU and Elman cells at any size; with the Python loops, GRU at
    H >= 512 and the tanh RNN at H >= 256. The numbers stay torch.nn.GRU's."""
    from rnnkit.engine import compiled

    torch.manual_seed(0)
    ref = torch.nn.GRU(8, 512, num_layers=2, bidirectional=True)
    ours = rnnkit.GRU(8, 512, num_layers=2, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3, 8, requires_grad=True)
    assert ours.resolve_backend(x) == "bptt"
    with torch.no_grad():
        assert ours.resolve_backend(x) == "native"
    assert rnnkit.LSTM(8, 512).resolve_backend(x.double()) == "native"
    small = [rnnkit.LSTM(8, 512), rnnkit.GRU(8, 256), rnnkit.RNN(8, 128),
             rnnkit.RNN(8, 256, nonlinearity="relu")]
    with compiled.disabled():
        assert rnnkit.RNN(8, 256).resolve_backend(x) == "bptt"
        assert [m.resolve_backend(x) for m in small] == ["native"] * 4
    if compiled.ops() is not None:
        assert [m.resolve_backend(x) for m in small] == ["bptt"] * 4
    out, h = ours(x)
    out_ref, h_ref = ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-6)
    g, = torch.autograd.grad((out * out_ref.detach()).sum(), x)
    g_ref, = torch.autograd.grad((out_ref * out_ref.detach()).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


def test_auto_keeps_the_gates_where_bptt_by_name_recomputes_them():
    """recompute=None: auto (after speed) keeps the GRU's gates, backend='bptt' (memory)
    recomputes them; True / False force either."""
    from rnnkit.bench.timing import saved_tensor_bytes

    torch.manual_seed(0)
    T, B, I, H = 4, 2, 3, 512
    x = torch.randn(T, B, I, requires_grad=True)
    sizes = {}
    for name, kw in {"auto": {}, "bptt": {"backend": "bptt"},
                     "auto, recompute": {"recompute": True},
                     "bptt, keep": {"backend": "bptt", "recompute": False}}.items():
        layer = rnnkit.GRU(I, H, **kw)
        assert layer.resolve_backend(x) == "bptt"
        sizes[name] = saved_tensor_bytes(lambda m=layer: m(x)[0])
    gates = T * B * 4 * H * 4
    assert sizes["auto"] - sizes["bptt"] == gates
    assert sizes["auto, recompute"] == sizes["bptt"]
    assert sizes["bptt, keep"] == sizes["auto"]


def test_auto_rnn_tanh_on_bptt_matches_torch():
    torch.manual_seed(0)
    ref = torch.nn.RNN(8, 256, num_layers=2, batch_first=True)
    ours = rnnkit.RNN(8, 256, num_layers=2, batch_first=True)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, 8, requires_grad=True)
    assert ours.resolve_backend(x) == "bptt"
    out, out_ref = ours(x)[0], ref(x)[0]
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    g, = torch.autograd.grad(out.square().sum(), x)
    g_ref, = torch.autograd.grad(out_ref.square().sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["bptt", "scan"])
def test_hand_written_backward_refuses_second_derivatives_clearly(backend):
    cell = "mingru" if backend == "scan" else "gru"
    layer = rnnkit.Recurrent(cell, 4, 8, backend=backend)
    x = torch.randn(3, 2, 4, requires_grad=True)
    (g,) = torch.autograd.grad(layer(x)[0].square().sum(), x)  # first derivative: fine
    with pytest.raises(RuntimeError, match="cannot be differentiated again.*backend='native'"):
        torch.autograd.grad(layer(x)[0].square().sum(), x, create_graph=True)


@pytest.mark.parametrize("cell", ["gru", "lstm", "lstm_cifg", "nas", "mut1", "rnn_tanh"])
def test_output_of_bptt_may_be_modified_in_place(cell):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell, 4, 8, backend="bptt")
    x = torch.randn(3, 2, 4, requires_grad=True)
    out, _ = layer(x)
    out.mul_(2)  # as nn.Dropout(inplace=True) or `out += ...` after a torch.nn layer
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(2 * layer(x)[0].sum(), x)
    torch.testing.assert_close(g, g_ref)
