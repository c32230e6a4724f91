"""Recurrent dropout per sequence and zoneout: every engine against the autograd step loop with
the same masks, the masks' shape, eval, p = 0, and the layer's options and backend choice."""

import pytest
import torch

import rnnkit
from rnnkit.cells import make_cell
from rnnkit.cells.base import Cell
from rnnkit.engine import compiled, run_sequence
from rnnkit.engine.regularisers import Noise, draw
from rnnkit.errors import UserError

CELLS = ["lstm", "gru", "rnn_tanh", "lstm_peephole"]
ZONED = ["lstm", "gru"]  # zoneout in the compiled loops


def _setup(name, T=6, B=3, I=4, H=5, seed=0, recompute=True):
    cell = make_cell(name, I, H)
    cell.recompute = recompute
    g = torch.Generator().manual_seed(seed)
    p = {k: (torch.rand(s, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
         for k, s in cell.parameter_shapes().items()}
    x = torch.randn(T, B, I, generator=g, dtype=torch.float64, requires_grad=True)
    state = tuple((torch.randn(B, H, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
                  for _ in range(cell.num_states))
    return cell, p, x, state


def _noise(cell, x, recurrent=0.0, zone=0.0, training=True, seed=5):
    torch.manual_seed(seed)
    T, B = x.shape[:2]
    rates = (zone,) * cell.num_states
    return draw(T, B, (cell.hidden_size,) * cell.num_states, x.detach(), recurrent, rates,
                training)


def _run(cell, p, x, state, backend, noise, mask=None):
    out, final = run_sequence(cell, x, state, p, backend, mask, noise)
    loss = out.pow(2).sum() + sum((s * (i + 2)).sum() for i, s in enumerate(final))
    grads = torch.autograd.grad(loss, [x, *state, *p.values()])
    return out, final, grads


def _assert_same(a, b):
    (o1, f1, g1), (o2, f2, g2) = a, b
    torch.testing.assert_close(o1, o2)
    for u, v in zip((*f1, *g1), (*f2, *g2)):
        torch.testing.assert_close(u, v)


ENGINES = ["compiled", "python"]


def _bptt(cell, p, x, state, noise, engine, mask=None):
    if engine == "python":
        with compiled.disabled():
            return _run(cell, p, x, state, "bptt", noise, mask)
    return _run(cell, p, x, state, "bptt", noise, mask)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("recompute", [True, False])
def test_recurrent_dropout_bptt_equals_autograd(name, engine, recompute):
    cell, p, x, state = _setup(name, recompute=recompute)
    noise = _noise(cell, x, recurrent=0.4)
    mask = torch.arange(6).unsqueeze(1) < torch.tensor([6, 3, 5]).unsqueeze(0)
    ref = _run(cell, p, x, state, "autograd", noise, mask)
    _assert_same(ref, _bptt(cell, p, x, state, noise, engine, mask))


@pytest.mark.parametrize("name", ZONED)
@pytest.mark.parametrize("recompute", [True, False])
def test_zoneout_bptt_equals_autograd(name, recompute):
    cell, p, x, state = _setup(name, recompute=recompute)
    noise = _noise(cell, x, recurrent=0.3, zone=0.4)
    mask = torch.arange(6).unsqueeze(1) < torch.tensor([6, 3, 5]).unsqueeze(0)
    ref = _run(cell, p, x, state, "autograd", noise, mask)
    _assert_same(ref, _bptt(cell, p, x, state, noise, "compiled", mask))


@pytest.mark.parametrize("name", ZONED)
def test_zoneout_eval_is_the_expectation(name):
    cell, p, x, state = _setup(name)
    noise = _noise(cell, x, zone=0.3, training=False)
    assert all(bool((d == 0.3).all()) for d in noise.zone)
    ref = _run(cell, p, x, state, "autograd", noise)
    _assert_same(ref, _bptt(cell, p, x, state, noise, "compiled"))
    # one step by hand: s(1) = p s(0) + (1 - p) s~(1)
    xp = cell.input_projection(x, p)
    new = cell.step(xp[0], state, p)
    torch.testing.assert_close(ref[0][0], 0.3 * state[0] + 0.7 * new[0])


class _UserElman(Cell):
    """An Elman cell of a user's: forward_step / backward_step, the generic bptt loop."""

    name = "user_elman_reg"

    def forward_step(self, xp, state, p):
        a = torch.tanh(xp + self.recurrent(state[0], p))
        return (a,), (a,)

    def backward_step(self, saved, dstate, p):
        (a,) = saved
        dz = dstate[0] * (1 - a * a)
        return dz, dz, (dz @ p["weight_hh"],), {}


def test_generic_bptt_loop_runs_both():
    cell = _UserElman(4, 5)
    g = torch.Generator().manual_seed(0)
    p = {k: (torch.rand(s, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
         for k, s in cell.parameter_shapes().items()}
    x = torch.randn(6, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    state = (torch.randn(3, 5, generator=g, dtype=torch.float64).requires_grad_(),)
    noise = _noise(cell, x, recurrent=0.4, zone=0.3)
    _assert_same(_run(cell, p, x, state, "autograd", noise),
                 _run(cell, p, x, state, "bptt", noise))


def test_masks_are_per_sequence():
    noise = draw(7, 64, (32,), torch.zeros(1), 0.5, (0.0,), training=True)
    m = noise.recurrent
    assert m.shape == (64, 32) and set(m.unique().tolist()) <= {0.0, 2.0}
    assert not all(torch.equal(m[0], m[b]) for b in range(1, 64))  # rows differ
    # the same mask at every step: h(t-1) of a row is read through the same units
    cell, p, x, state = _setup("rnn_tanh", T=4, B=2, I=3, H=8)
    noise = Noise(recurrent=torch.tensor([[2.0] * 4 + [0.0] * 4, [0.0] * 4 + [2.0] * 4],
                                         dtype=torch.float64))
    out, _ = run_sequence(cell, x, state, p, "bptt", None, noise)
    out2, _ = run_sequence(cell, x, tuple(s * noise.recurrent / 2 for s in state), p, "bptt",
                           None, Noise(recurrent=noise.recurrent))
    torch.testing.assert_close(out, out2)  # the dropped units of h(t-1) never count


def test_p_zero_is_no_regulariser():
    assert draw(5, 3, (4, 4), torch.zeros(1), 0.0, (0.0, 0.0), training=True) is None
    layer = rnnkit.LSTM(3, 4, backend="bptt", recurrent_dropout=0.0, zoneout=0.0)
    plain = rnnkit.LSTM(3, 4, backend="bptt")
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(layer(x)[0], plain(x)[0], rtol=0, atol=0)


# ---- the layer ----------------------------------------------------------------------------------
def _copying_relu_rnn(backend, **kw):
    """h(t) = relu(W_hh h(t-1)) with W_hh = I and no input: the state shows the masks."""
    layer = rnnkit.RNN(3, 16, 1, "relu", backend=backend, **kw)
    with torch.no_grad():
        layer.weight_ih_l0.zero_(), layer.bias_ih_l0.zero_(), layer.bias_hh_l0.zero_()
        layer.weight_hh_l0.copy_(torch.eye(16))
    return layer


@pytest.mark.parametrize("backend", ["bptt", "autograd", "auto"])
def test_layer_recurrent_dropout_is_per_sequence(backend):
    torch.manual_seed(0)
    p = 0.5
    layer = _copying_relu_rnn(backend, recurrent_dropout=p)
    out, _ = layer(torch.zeros(5, 8, 3), torch.ones(1, 8, 16))
    kept = out[0] != 0
    for t in range(5):  # the same units of each sequence at every step, scaled by 1/(1-p)
        torch.testing.assert_close(out[t], kept.float() * (1 / (1 - p)) ** (t + 1))
    assert not (kept == kept[0]).all()  # each sequence its own mask
    layer.eval()  # off in eval, and auto may take torch's kernel again
    torch.testing.assert_close(layer(torch.zeros(5, 8, 3), torch.ones(1, 8, 16))[0],
                               torch.ones(5, 8, 16))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "lstm_cifg", "mut1", "mingru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_backends_agree_with_the_same_masks(cell, bidirectional):
    opts = {"num_layers": 2, "bidirectional": bidirectional,
            "recurrent_dropout": 0.0 if cell == "mingru" else 0.3,
            "zoneout": 0.2 if cell in [*ZONED, "mingru"] else 0.0, "dtype": torch.float64}
    torch.manual_seed(0)
    ref = rnnkit.Recurrent(cell, 4, 5, backend="autograd", **opts)
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 3, 5])
    results = []
    for backend in ["autograd", "auto", "bptt"]:
        if backend == "bptt" and cell == "mut1":  # its bptt loops have no recurrent dropout
            with pytest.raises(UserError, match="no recurrent_dropout.*'auto'"):
                rnnkit.Recurrent(cell, 4, 5, backend="bptt", **opts)
            continue
        layer = rnnkit.Recurrent(cell, 4, 5, backend=backend, **opts)
        layer.load_state_dict(ref.state_dict())
        torch.manual_seed(1)  # the same masks
        out, _ = layer(x, lengths=lengths)
        grads = torch.autograd.grad(out.pow(2).sum(), [x, *layer.parameters()])
        results.append((out, grads))
    for out, grads in results[1:]:
        torch.testing.assert_close(out, results[0][0])
        for a, b in zip(grads, results[0][1]):
            torch.testing.assert_close(a, b)


def test_layer_zoneout_eval_is_deterministic_and_the_expectation():
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 4, backend="auto", zoneout=0.25).eval()
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)
    plain = rnnkit.GRU(3, 4, backend="autograd").eval()
    plain.load_state_dict(layer.state_dict())
    h, outs = torch.zeros(1, 2, 4), []
    for t in range(5):  # h(t) = p h(t-1) + (1 - p) h~, h~ one plain step from h(t-1)
        h = 0.25 * h + 0.75 * plain(x[t : t + 1], h)[1]
        outs.append(h[0])
    torch.testing.assert_close(layer(x)[0], torch.stack(outs))


def test_layer_backend_choice_and_errors():
    x = torch.randn(4, 2, 3)
    lstm = rnnkit.LSTM(3, 8, recurrent_dropout=0.25, zoneout=0.1)
    assert lstm.resolve_backend(x) == "bptt"
    assert rnnkit.LSTM(3, 8, weight_drop=0.25).resolve_backend(x.requires_grad_()) != "autograd"
    assert rnnkit.Recurrent("nas", 3, 8, zoneout=0.1).resolve_backend(x) == "autograd"
    # (minGRU: its generic bptt loop, which zones any cell's states)
    assert rnnkit.Recurrent("mingru", 3, 8, zoneout=0.1).resolve_backend(x) == "bptt"
    with pytest.raises(ValueError, match="native.*recurrent dropout per sequence"):
        rnnkit.LSTM(3, 8, backend="native", recurrent_dropout=0.25)
    with pytest.raises(UserError, match="no zoneout"):
        rnnkit.Recurrent("lstm_peephole", 3, 8, backend="bptt", zoneout=0.1)
    with pytest.raises(ValueError, match="zoneout must be"):
        rnnkit.GRU(3, 8, zoneout=(0.1, 0.2))
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        rnnkit.GRU(3, 8, recurrent_dropout=1.0)
    with pytest.raises(UserError, match="has no W_hh.*recurrent_dropout=0"):
        rnnkit.Recurrent("mingru", 3, 8, recurrent_dropout=0.1)
    assert "zoneout=(0.1, 0.5)" in repr(rnnkit.LSTM(3, 8, zoneout=(0.1, 0.5)))


def test_cli_records_the_regularisers_and_reloads_them(tmp_path, capsys):
    import csv
    import json

    from rnnkit.cli.main import main

    rows = tmp_path / "rows.csv"
    with open(rows, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([["ab ba abba" if i % 2 else "xy yx", "AB"[i % 2]] for i in range(40)])
    out = tmp_path / "run"
    assert main(["train", "generator", "--csv", str(rows), "--hidden", "8", "--embed", "4",
                 "--steps", "2", "--no-progress", "--samples-per-label", "1", "--json",
                 "--recurrent-dropout", "0.25", "--zoneout", "0.1", "--out", str(out)]) == 0
    capsys.readouterr()
    config = json.loads((out / "config.json").read_text())
    assert config["recurrent_dropout"] == 0.25 and config["zoneout"] == 0.1
    assert config["weight_drop"] == 0.0
    assert config["model"]["recurrent_dropout"] == 0.25 and "weight_drop" not in config["model"]
    rnn = rnnkit.load(out).model.rnn
    assert (rnn.recurrent_dropout, rnn.zoneout, rnn.weight_drop) == (0.25, (0.1, 0.1), 0.0)


def test_the_lm_command_takes_them(tmp_path, capsys):
    from rnnkit.cli.main import main

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 100)
    out = tmp_path / "run"
    assert main(["train", "lm", "--text", str(text), "--hidden", "8", "--steps", "2",
                 "--seq-len", "16", "--no-progress", "--weight-drop", "0.2",
                 "--zoneout", "0.1", "--out", str(out)]) == 0
    capsys.readouterr()
    rnn = rnnkit.load(out).model.rnn
    assert (rnn.recurrent_dropout, rnn.zoneout, rnn.weight_drop) == (0.0, (0.1, 0.1), 0.2)


def test_a_layer_pickled_before_keeps_its_weight_drop():
    import pickle

    layer = rnnkit.LSTM(3, 4)
    state = layer.__dict__.copy()
    for key in ("weight_drop", "zoneout"):  # as a layer from before issue 16
        del state[key]
    state["recurrent_dropout"] = 0.3
    old = rnnkit.LSTM.__new__(rnnkit.LSTM)
    old.__setstate__(state)
    old = pickle.loads(pickle.dumps(old))
    assert (old.weight_drop, old.recurrent_dropout, old.zoneout) == (0.3, 0.0, (0.0, 0.0))
