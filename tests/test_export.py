"""The drop-ins go wherever torch.nn's recurrent layers go: torch.compile, torch.export,
torch.jit.trace, both ONNX exporters (run in onnxruntime), and a whole model saved with
torch.save and loaded in safe mode. Small sizes; the slower combinations are marked slow."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.engine import compiled

I, H, B, T = 4, 6, 3, 5
KINDS = ("lstm", "gru", "rnn", "lstm_peephole", "mut1", "mingru")  # drop-ins, then Recurrent
# (bidirectional, with initial states): each kind runs one of two layouts that between them
# cover both of each, the other combinations are slow
FAST = [(False, False), (True, True)]
SLOW = [(False, True), (True, False)]


def cases(fast: Callable[[str, bool, bool], bool], *first: str) -> list:
    """(*first, kind, bidirectional, with_hx) for every kind and layout; slow unless ``fast``."""
    return [pytest.param(*first, k, bi, hx, id="-".join([*first, k, f"bi{bi:d}", f"hx{hx:d}"]),
                         marks=() if fast(k, bi, hx) else pytest.mark.slow)
            for k in KINDS for bi, hx in FAST + SLOW]


def one_layout(kind: str, bidirectional: bool, with_hx: bool) -> bool:
    return (bidirectional, with_hx) == FAST[KINDS.index(kind) % 2]


LAYOUTS = cases(one_layout)


def build(kind: str, bidirectional: bool, backend: str = "auto") -> rnnkit.Recurrent:
    torch.manual_seed(0)
    kw = {"batch_first": True, "bidirectional": bidirectional, "backend": backend}
    if kind in ("lstm", "gru", "rnn"):
        return getattr(rnnkit, kind.upper())(I, H, 2, **kw)
    return rnnkit.Recurrent(kind, I, H, 2, **kw)


def inputs(m: rnnkit.Recurrent, with_hx: bool) -> tuple:
    x = torch.randn(B, T, I)
    if not with_hx:
        return (x,)
    states = tuple(torch.randn(2 * m.num_directions, B, H) for _ in range(m.num_states))
    return (x, states if len(states) == 2 else states[0])


def flat(obj) -> list[torch.Tensor]:
    """Nested tuples of tensors, flattened in order (as ONNX lists inputs and outputs)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    return [t for item in obj for t in flat(item)]


def assert_same(got, want, atol: float = 1e-5) -> None:
    got, want = flat(got), flat(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=atol, rtol=0)


@pytest.mark.parametrize("kind,bidirectional,with_hx", LAYOUTS)
def test_jit_trace_matches_eager(kind, bidirectional, with_hx):
    m = build(kind, bidirectional)
    args = inputs(m, with_hx)
    traced = torch.jit.trace(m, args)
    assert_same(traced(*args), m(*args))


@pytest.mark.parametrize("kind,bidirectional,with_hx", LAYOUTS)
def test_export_matches_eager(kind, bidirectional, with_hx):
    m = build(kind, bidirectional)
    args = inputs(m, with_hx)
    program = torch.export.export(m, args)
    assert_same(program.module()(*args), m(*args))


def run_onnx(path, args) -> list[torch.Tensor]:
    session = pytest.importorskip("onnxruntime").InferenceSession(str(path))
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), flat(args))}
    return [torch.from_numpy(out) for out in session.run(None, feeds)]


# the dynamo exporter takes 4-10 s a model here: one drop-in and one own cell stay fast
ONNX = (cases(one_layout, "torchscript")
        + cases(lambda k, bi, hx: (k, bi, hx) in {("lstm", True, True), ("mut1", False, False)},
                "dynamo"))


@pytest.mark.parametrize("exporter,kind,bidirectional,with_hx", ONNX)
def test_onnx_export_runs_in_onnxruntime(exporter, kind, bidirectional, with_hx, tmp_path):
    m = build(kind, bidirectional).eval()
    args = inputs(m, with_hx)
    torch.onnx.export(m, args, tmp_path / "m.onnx", dynamo=exporter == "dynamo")
    with torch.no_grad():
        assert_same(run_onnx(tmp_path / "m.onnx", args), m(*args))


# torch.compile is slow to start: a handful of cases fast, the rest slow
COMPILE = cases(lambda k, bi, hx: (k, bi, hx) in {("lstm", True, True), ("gru", False, False),
                                                  ("mingru", True, True)})


@pytest.mark.parametrize("kind,bidirectional,with_hx", COMPILE)
def test_compile_trains_as_eager(kind, bidirectional, with_hx):
    """Outputs and gradients of a compiled training step equal eager mode's."""
    m = build(kind, bidirectional)
    args = inputs(m, with_hx)
    params = list(m.parameters())

    def grads(module):
        out = module(*args)
        return out, torch.autograd.grad(out[0].square().mean(), params)

    (out, g), (want_out, want_g) = grads(torch.compile(m)), grads(m)
    assert_same(out, want_out, atol=0)
    assert_same(g, want_g, atol=0)


@pytest.mark.slow
def test_compile_runs_the_autograd_backend_in_graph():
    m = build("lstm", False, backend="autograd")
    (x,) = inputs(m, False)
    assert_same(torch.compile(m, fullgraph=True)(x), m(x))  # one graph, no break


@pytest.mark.parametrize("backend", ["bptt", "scan"])
def test_an_untraceable_backend_says_so(backend):
    m = build("mingru", False, backend=backend)
    (x,) = inputs(m, False)
    for record in (lambda: torch.jit.trace(m, (x,)), lambda: torch.export.export(m, (x,))):
        with pytest.raises(ValueError, match=f"backend '{backend}' cannot be traced.*"
                           "backend='auto' or 'autograd'"):
            record()


def test_auto_takes_torchs_kernel_under_tracing_and_the_eager_engines_outside():
    m = build("lstm", False)
    (x,) = inputs(m, False)
    assert "aten::lstm" in str(torch.jit.trace(m, (x,)).graph)  # one kernel call
    assert "aten::lstm" not in str(torch.jit.trace(build("mut1", False), (x,)).graph)
    want = "bptt" if compiled.usable(x) else "native"  # the compiled loops, where they build
    assert m.resolve_backend(x.transpose(0, 1)) == want


# ---- a whole model through torch.save / torch.load in safe mode -------------------------------
@pytest.mark.parametrize("cell", rnnkit.cells.available())
def test_every_layer_loads_whole_in_safe_mode(cell, tmp_path):
    m = rnnkit.Recurrent(cell, 3, 4, 2, bidirectional=True)
    torch.save(m, tmp_path / "m.pt")
    with torch.serialization.safe_globals(rnnkit.safe_globals()):
        loaded = torch.load(tmp_path / "m.pt")  # weights_only=True: torch's default
    x = torch.randn(5, 2, 3)
    assert type(loaded) is type(m)
    assert_same(loaded(x), m(x), atol=0)


def test_drop_ins_and_rnnkit_models_load_whole_in_safe_mode(tmp_path):
    from rnnkit.models.language_model import LanguageModel

    for m in (rnnkit.RNN(3, 4), rnnkit.LSTM(3, 4), rnnkit.GRU(3, 4), LanguageModel(11, hidden=8)):
        torch.save(m, tmp_path / "m.pt")
        with torch.serialization.safe_globals(rnnkit.safe_globals()):
            loaded = torch.load(tmp_path / "m.pt")
        assert type(loaded) is type(m)
        for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
            assert k == k2 and torch.equal(a, b)


class RNNModel(nn.Module):
    """PyTorch's word_language_model example, with rnnkit's LSTM swapped in."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = rnnkit.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)).view(-1, self.decoder.out_features), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))


def batchify(ids: torch.Tensor, bsz: int) -> torch.Tensor:
    nbatch = ids.size(0) // bsz
    return ids[: nbatch * bsz].view(bsz, -1).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int = 8):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def evaluate(model: RNNModel, data: torch.Tensor, ntokens: int) -> float:
    model.eval()
    total, hidden = 0.0, model.init_hidden(data.size(1))
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, 8):
            x, y = get_batch(data, i)
            output, hidden = model(x, hidden)
            total += len(x) * nn.functional.cross_entropy(output, y).item()
    return total / (len(data) - 1)


def test_word_language_model_saved_whole_loads_in_safe_mode(tmp_path):
    torch.manual_seed(0)
    words = "the cat sat on the mat . the dog sat on the log . a cat saw a dog .".split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    ids = torch.tensor([vocab[w] for w in words * 12])
    train, test = batchify(ids[:160], 4), batchify(ids[160:], 2)
    ntokens = len(vocab)
    model = RNNModel(ntokens, 8, 16, 2)
    before = evaluate(model, test, ntokens)
    lr, clip = 2.0, 0.25
    for _epoch in range(3):
        model.train()
        hidden = model.init_hidden(train.size(1))
        for i in range(0, train.size(0) - 1, 8):
            x, y = get_batch(train, i)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(x, hidden)
            nn.functional.cross_entropy(output, y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
    test_loss = evaluate(model, test, ntokens)
    assert math.isfinite(test_loss) and test_loss < before

    torch.save(model, tmp_path / "model.pt")
    with torch.serialization.safe_globals([*rnnkit.safe_globals(), RNNModel]):
        loaded = torch.load(tmp_path / "model.pt")  # safe mode: no weights_only=False
    assert evaluate(loaded, test, ntokens) == test_loss
