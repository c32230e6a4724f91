"""Seeing inside (issue 15): gradient flow against torch.nn's cells under autograd, the forward
signal against autograd's Jacobian, spectra against numpy, text features by hand, a unit built
to track "inside a string" found by the probes, `rnnkit analyze` on run directories, and its
errors."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit.analysis.features import text_features
from rnnkit.analysis.gradients import gradient_flow, hidden_gradients
from rnnkit.analysis.probes import correlations, probe, unit_activations
from rnnkit.analysis.spectra import (
    block_spectrum,
    forward_signal,
    gate_blocks,
    spectra,
    spectral_radii,
)
from rnnkit.cli.main import main
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.synced import SyncedRNN
from rnnkit.train.checkpoint import save_checkpoint
from rnnkit.train.rundir import RunDir

TORCH_CELLS = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


# ---- gradient flow == autograd on torch.nn's own cells --------------------------------------

def _reference_grads(model: nn.Module, x: torch.Tensor, loss_of) -> list[torch.Tensor]:
    """dL/dh_t per layer: torch.nn.*Cell with the model's weights, stepped in Python, every h_t
    kept (retain_grad), one backward."""
    rnn = model.rnn
    kept = []
    for k in range(rnn.num_layers):
        ref = TORCH_CELLS[rnn.mode](x.shape[-1], rnn.hidden_size).double()
        ref.load_state_dict({n: getattr(rnn, f"{n}_l{k}") for n in
                             ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        h = x.new_zeros(x.shape[1], rnn.hidden_size)
        state = (h, h) if rnn.mode == "lstm" else h
        hs = []
        for x_t in x.unbind(0):
            state = ref(x_t, state)
            h = state[0] if rnn.mode == "lstm" else state
            h.retain_grad()
            hs.append(h)
        kept.append(hs)
        x = torch.stack(hs)
    loss_of(x).backward()
    return [torch.stack([h.grad for h in hs]) for hs in kept]


@pytest.mark.parametrize("cell", sorted(TORCH_CELLS))
@pytest.mark.parametrize("loss", ["last", "all"])
def test_language_model_gradients_equal_autograd_on_torch_cells(cell, loss):
    torch.manual_seed(0)
    model = LanguageModel(11, cell=cell, embed=5, hidden=7, layers=2).double().eval()
    tokens, targets = torch.randint(11, (12, 3)), torch.randint(11, (12, 3))

    def loss_of(top):
        steps = slice(-1, None) if loss == "last" else slice(None)
        logits = model.output(top[steps])
        return F.cross_entropy(logits.reshape(-1, 11), targets[steps].reshape(-1),
                               reduction="sum")

    # the reference sees the model's own forward: its loss must be the model's
    with torch.no_grad():
        logits, _ = model(tokens)
        steps = slice(-1, None) if loss == "last" else slice(None)
        expected = F.cross_entropy(logits[steps].reshape(-1, 11), targets[steps].reshape(-1),
                                   reduction="sum")
    ref = _reference_grads(model, model.embedding(tokens).detach(), loss_of)
    with torch.no_grad():
        assert float(loss_of(model.rnn(model.embedding(tokens))[0])) == pytest.approx(
            float(expected), rel=1e-12)
    got = hidden_gradients(model, tokens, targets, loss)
    assert len(got) == 2
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-13)
    flow = gradient_flow(model, tokens, targets, loss)
    for layer, r in enumerate(ref):
        want = r.norm(dim=-1).mean(1).flip(0)  # k steps back from the last step
        np.testing.assert_allclose(flow.norms[layer], want.numpy(), rtol=1e-9)
    if loss == "last":  # nothing after the last step: h_T's gradient reaches only the output
        assert flow.norms[0][0] > 0


def test_adding_model_gradients_equal_autograd_and_vanish_for_a_contracting_rnn():
    torch.manual_seed(1)
    model = SyncedRNN(2, 1, cell="rnn_tanh", hidden=6, layers=1, readout="last").double()
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.3)  # a contracting recurrence: gradients must vanish
    x, y = torch.rand(40, 5, 2, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
    ref = _reference_grads(model, x, lambda top: ((model.output(top[-1]).squeeze(-1) - y) ** 2
                                                  ).sum())
    torch.testing.assert_close(hidden_gradients(model, x, y)[0], ref[0], rtol=1e-9, atol=1e-30)
    norms = gradient_flow(model, x, y).norms[0]
    assert norms[30] < 1e-6 * norms[0]
    assert all(a >= b for a, b in zip(norms[5:], norms[6:]))  # a steady fall, step by step


# ---- forward signal and spectra -----------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_forward_signal_is_the_norm_of_autograds_jacobian(cell):
    torch.manual_seed(2)
    model = SyncedRNN(3, 1, cell=cell, hidden=5, layers=2, readout="last").double().eval()
    x = torch.randn(9, 2, 3, dtype=torch.float64)

    def top(x1):
        return model.rnn(torch.cat([x1.unsqueeze(0), x[1:]]))[0]  # the model's own forward

    jac = torch.autograd.functional.jacobian(top, x[0])  # (T, B, H, B, I)
    want = torch.stack([jac[:, b, :, b, :] for b in range(2)], 1).flatten(2).norm(dim=-1)
    got = forward_signal(model, x, chunk=4)  # two passes, of 2 input dimensions and of 1
    assert len(got) == 2
    np.testing.assert_allclose(got[-1], want.mean(1).numpy(), rtol=1e-9)


def test_spectra_name_each_gate_block_and_match_numpy():
    torch.manual_seed(3)
    model = SyncedRNN(2, 1, cell="lstm", hidden=6, layers=2)
    blocks = gate_blocks(model, 1)
    assert list(blocks) == ["i", "f", "g", "o"]  # PyTorch's order
    torch.testing.assert_close(blocks["f"], model.rnn.weight_hh_l1[6:12].detach().double())
    for w in blocks.values():
        spec = block_spectrum(w)
        assert spec["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(w)).max())
        np.testing.assert_allclose(spec["singular_values"], np.linalg.svd(w.numpy())[1])
    assert [list(layer) for layer in spectra(model)] == [["i", "f", "g", "o"]] * 2
    with torch.no_grad():  # triangular: its eigenvalues are its diagonal, radius 0.5
        model.rnn.weight_hh_l0[12:18] = torch.diag(torch.tensor([0.5, -0.4, 0.3, 0.2, 0.1, 0.0])
                                                   ) + torch.diag(torch.full((5,), 2.0), 1)
    spec = spectra(model)[0]["g"]
    assert spec["spectral_radius"] == pytest.approx(0.5)
    assert spec["max_singular_value"] == pytest.approx(np.linalg.norm(
        model.rnn.weight_hh_l0[12:18].detach().numpy(), 2))


# ---- features and probes ------------------------------------------------------------------

def test_text_features_on_code_and_prose():
    code = 'def f(a, b=[1, "x)"]):\n    s = "it\\"s"  # a (comment)\n    return """\n(\n"""\n'
    f = text_features(code)

    assert [code[i] for i in np.flatnonzero(f["inside_string"])] == list('"x)') + list(
        '"it\\"s') + list('"""\n(\n')  # the closing quote is out again; escapes stay in
    comment = "".join(c for c, v in zip(code, f["inside_comment"]) if v)
    assert comment == "# a (comment)"
    either = f["comment_or_string"]  # deck 003's cell: on inside comments and quotes
    np.testing.assert_array_equal(either, np.logical_or(f["inside_string"], f["inside_comment"]))
    assert either.sum() == f["inside_string"].sum() + f["inside_comment"].sum()  # never both
    depth = f["bracket_depth"]
    assert depth[code.index("(")] == 1 and depth[code.index("[")] == 2
    assert depth[code.index(":")] == 0  # brackets in the string and comment are not counted
    assert f["indentation"][code.index("s =")] == 4 and f["indentation"][0] == 0
    assert f["position_in_line"][code.index("s =")] == 5
    prose = 'He said "stop it" and left.\n"Yes," she said.'
    q = text_features(prose)["inside_quotes"]
    assert "".join(c for c, v in zip(prose, q) if v) == '"stop it"Yes,'


def test_correlations_match_numpy():
    rng = np.random.default_rng(0)
    values, feature = rng.normal(size=(200, 7)), rng.normal(size=200)
    values[:, 3] = 5.0  # constant: no correlation
    r = correlations(values, feature)
    for i in (0, 1, 6):
        assert r[i] == pytest.approx(np.corrcoef(values[:, i], feature)[0, 1])
    assert np.isnan(r[3])


def _code_text(n_lines: int, seed: int = 0) -> str:
    """Lines with short double-quoted strings (no # and no single quotes)."""
    rng = random.Random(seed)
    words = ["x", "y", "total", "name", "f(a)", "[1, 2]"]
    lines = []
    for _ in range(n_lines):
        parts = [rng.choice(words)]
        for _ in range(rng.randint(0, 3)):
            s = "".join(rng.choice("abc de") for _ in range(rng.randint(1, 8)))
            parts.append(f'"{s}"' if rng.random() < 0.5 else rng.choice(words))
        lines.append(" " * 4 * rng.randint(0, 2) + rng.choice(words) + " = " + " + ".join(parts))
    return "\n".join(lines) + "\n"


def string_tracking_lm(tokenizer: CharTokenizer, hidden: int = 6) -> LanguageModel:
    """A character LSTM whose unit 0 flips its cell between -1 and +1 at every double quote,
    sets it to -1 at a newline (a string ends with its line) and holds it otherwise: it copies
    "inside a string". The other units are random."""
    V, H = tokenizer.vocab_size, hidden
    torch.manual_seed(4)
    model = LanguageModel(V, cell="lstm", embed=V, hidden=H).eval()
    q, nl = tokenizer.encode('"\n')
    i, f, g, o = (k * H for k in range(4))  # row of unit 0 in each gate block
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(V))
        for w in (model.rnn.weight_ih_l0, model.rnn.weight_hh_l0, model.rnn.bias_ih_l0,
                  model.rnn.bias_hh_l0):
            w[[i, f, g, o]] = 0.0
        model.rnn.weight_ih_l0[i, q], model.rnn.bias_ih_l0[i] = 30.0, -15.0  # write at a quote
        model.rnn.weight_ih_l0[f, q], model.rnn.bias_ih_l0[f] = -30.0, 15.0  # else keep
        model.rnn.bias_ih_l0[g], model.rnn.weight_hh_l0[g, 0] = 5.0, -20.0  # write -sign(h)
        model.rnn.bias_ih_l0[o] = 15.0
        model.rnn.weight_ih_l0[[i, f, g], nl] = torch.tensor([30.0, -30.0, -40.0])  # out
    return model


def test_a_unit_built_to_track_strings_is_found_with_correlation_one():
    text = '""\n' + _code_text(300)  # from the first character on, the unit is in or out
    tok = CharTokenizer.train(text)
    acts = unit_activations(string_tracking_lm(tok), tok, text, streams=1)
    assert acts.values.shape == (len(text), 18)  # 6 hidden units, 6 cell units as c, tanh(c)
    found = {p.feature: p for p in probe(acts)}
    best = found["inside_string"]
    assert (best.unit.layer, best.unit.index) == (0, 0)
    assert abs(best.correlation) > 0.999
    assert found["inside_comment"].unit is None  # no comment in this text: nothing to find
    for p in found.values():  # the reported number is the unit's correlation
        if p.unit is not None:
            column = acts.values[:, acts.units.index(p.unit)]
            assert p.correlation == pytest.approx(
                np.corrcoef(column, text_features(acts.text)[p.feature])[0, 1], abs=1e-6)


def test_hidden_units_are_h_and_cell_units_c_and_tanh_c_as_deck_003_colours_them():
    text = _code_text(60, seed=3)
    tok = CharTokenizer.train(text)
    torch.manual_seed(0)
    model = LanguageModel(tok.vocab_size, cell="lstm", embed=5, hidden=4, layers=2).eval()
    with torch.no_grad():
        model.rnn.bias_ih_l1[4:8] = 3.0  # forget gate open: layer 1's c runs past [-1, 1]
    acts = unit_activations(model, tok, text, streams=1)
    x = model.embedding(torch.tensor(tok.encode(text)).unsqueeze(1))
    state, hs, cs = None, [], []
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = model.rnn(x[t:t + 1], state)
            hs.append(torch.cat([s for s in state[0]], -1)[0])
            cs.append(torch.cat([s for s in state[1]], -1)[0])
    h, c = torch.stack(hs).numpy(), torch.stack(cs).numpy()
    assert np.abs(c).max() > 1.0  # c and tanh(c) differ
    kinds = [(u.layer, u.state) for u in acts.units]
    for layer in (0, 1):
        cols = [j for j, k in enumerate(kinds) if k == (layer, "hidden")]
        np.testing.assert_allclose(acts.values[:, cols], h[:, 4 * layer:4 * layer + 4],
                                   atol=1e-5)
        cols = [j for j, k in enumerate(kinds) if k == (layer, "cell")]
        np.testing.assert_allclose(acts.values[:, cols], c[:, 4 * layer:4 * layer + 4],
                                   atol=1e-5)
        cols = [j for j, k in enumerate(kinds) if k == (layer, "tanh(cell)")]
        np.testing.assert_allclose(acts.values[:, cols],
                                   np.tanh(c[:, 4 * layer:4 * layer + 4]), atol=1e-5)


# ---- run directories and the command ------------------------------------------------------

def _lm_run(path: Path, text: str, model: LanguageModel, tok: CharTokenizer,
            init: LanguageModel | None = None) -> Path:
    """A run directory as rnnkit train lm writes it, around a given model."""
    (path / "checkpoints").mkdir(parents=True)
    (path / "data.txt").write_text(text, encoding="utf-8")
    config = {"task": "lm", "dataset": None, "text": str(path / "data.txt"), "max_chars": None,
              "val_fraction": 0.5, "test_fraction": 0.1, "seq_len": 30, "model": model.config}
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    save_checkpoint(path / "checkpoints" / "init.safetensors", init or model, None, {"step": 0})
    save_checkpoint(path / "checkpoints" / "best.safetensors", model, None, {"step": 100})
    tok.save(path / "checkpoints")
    return path


def test_analyze_units_command_finds_the_string_unit(tmp_path, capsys):
    text = _code_text(400, seed=1)
    tok = CharTokenizer.train(text)
    run = _lm_run(tmp_path / "run", text, string_tracking_lm(tok), tok)
    probe_text = tmp_path / "probe.py"
    probe_text.write_text(_code_text(200, seed=2), encoding="utf-8")
    assert main(["analyze", "units", str(run), "--text", str(probe_text)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["position_in_line", "inside_string",
                                                   "inside_comment", "comment_or_string",
                                                   "bracket_depth", "indentation",
                                                   "inside_quotes"]
    row = lines[1].split()
    assert row[1:5] == ["layer", "0", "unit", "0"] and abs(float(row[-1])) > 0.95
    saved = json.loads((run / "analysis" / "units.json").read_text())
    assert saved["features"][1]["index"] == 0 and saved["text"] == str(probe_text)
    page = (run / "analysis" / "units.html").read_text()
    assert page.count("<pre>") == 6 and "inside_string" in page  # none for inside_comment
    assert (run / "analysis" / "units.png").stat().st_size > 1000
    assert main(["analyze", "units", str(run), "--json"]) == 0  # the validation text
    assert json.loads(capsys.readouterr().out)["text"] == "validation"


def test_analyze_gradients_and_spectra_commands_write_what_the_api_computes(tmp_path, capsys):
    text = _code_text(300, seed=3)
    tok = CharTokenizer.train(text)
    torch.manual_seed(5)
    trained, init = (LanguageModel(tok.vocab_size, cell="gru", embed=8, hidden=10, layers=2)
                     for _ in range(2))
    run = _lm_run(tmp_path / "a", text, trained, tok, init)
    assert main(["analyze", "gradients", str(run), "--batch", "4", "--length", "25",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((run / "analysis" / "gradients.json").read_text())
    assert result["length"] == 25 and result["falloff_steps"] == 24
    assert len(result["trained"]["norms"]) == 2 and len(result["trained"]["norms"][0]) == 25
    assert result["init"]["norms"] != result["trained"]["norms"]  # two different checkpoints
    norms = result["trained"]["norms"][1]
    assert result["trained"]["falloff"][1] == pytest.approx(norms[0] / norms[24])

    other = _lm_run(tmp_path / "b", text, LanguageModel(tok.vocab_size, cell="lstm", embed=8,
                                                        hidden=10), tok)
    assert main(["analyze", "gradients", str(run), "--compare", str(other), "--batch", "2",
                 "--length", "20"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 2 * 2 + 2 * 1  # header, a (2 layers) and b (1), init and trained
    compared = json.loads((run / "analysis" / "gradients_compare.json").read_text())
    assert [r["cell"] for r in compared["runs"]] == ["gru", "lstm"]
    assert (run / "analysis" / "gradients_compare.png").stat().st_size > 1000

    assert main(["analyze", "spectra", str(run), "--batch", "2", "--length", "12",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["checkpoint"] for c in result["checkpoints"]] == ["init", "best"]
    assert [c["step"] for c in result["checkpoints"]] == [0, 100]
    assert list(result["checkpoints"][1]["layers"][0]) == ["r", "z", "n"]
    radius = result["checkpoints"][1]["layers"][1]["z"]["spectral_radius"]
    w = trained.rnn.weight_hh_l1[10:20].detach().numpy()
    assert radius == pytest.approx(np.abs(np.linalg.eigvals(w)).max(), rel=1e-6)
    assert len(result["forward_signal"]["trained"][0]) == 12
    assert (run / "analysis" / "spectra.png").stat().st_size > 1000


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ")
    return err[0]


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys):
    text = _code_text(200, seed=4)
    tok = CharTokenizer.train(text)
    run = _lm_run(tmp_path / "lm", text, LanguageModel(tok.vocab_size, hidden=8), tok)
    (run / "checkpoints" / "init.safetensors").unlink()
    assert main(["analyze", "gradients", str(run)]) == 2
    assert "no init checkpoint" in _error_line(capsys)
    assert main(["analyze", "units", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in _error_line(capsys)
    assert main(["analyze", "units", str(run), "--text", str(tmp_path / "missing.txt")]) == 2
    assert "no such text file" in _error_line(capsys)

    minimal = _lm_run(tmp_path / "min", text, LanguageModel(tok.vocab_size, cell="mingru",
                                                            hidden=8), tok)
    assert main(["analyze", "spectra", str(minimal)]) == 2
    assert "no square recurrent matrix" in _error_line(capsys)

    adding = tmp_path / "adding"
    (adding / "checkpoints").mkdir(parents=True)
    model = SyncedRNN(2, 1, cell="lstm", hidden=8, readout="last")
    (adding / "config.json").write_text(json.dumps({"task": "synthetic", "model": model.config}))
    save_checkpoint(adding / "checkpoints" / "best.safetensors", model, None, {"step": 1})
    assert main(["analyze", "units", str(adding)]) == 2
    assert "give a run of rnnkit train lm" in _error_line(capsys)

    classifier = tmp_path / "cls"
    (classifier / "checkpoints").mkdir(parents=True)
    (classifier / "config.json").write_text(json.dumps({"task": "classifier"}))
    assert main(["analyze", "gradients", str(classifier)]) == 2
    assert "rnnkit train classifier" in _error_line(capsys)


def test_the_spectral_radius_is_logged_at_each_evaluation_and_drawn(tmp_path, capsys):
    text = tmp_path / "code.txt"
    text.write_text(_code_text(400, seed=6))
    run = tmp_path / "lm"
    assert main(["train", "lm", "--text", str(text), "--cell", "lstm", "--hidden", "12",
                 "--embed", "8", "--layers", "2", "--steps", "30", "--eval-every", "10",
                 "--seq-len", "32", "--batch-size", "8", "--no-progress", "--out",
                 str(run)]) == 0
    capsys.readouterr()
    evals = [r for r in RunDir(run, write=False).metrics() if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert all(sorted(r["spectral_radius"]) == [f"{k}.{g}" for k in (0, 1) for g in "fgio"]
               for r in evals)
    last = rnnkit.load(run, "last").model  # written at step 30, the last evaluation
    assert evals[-1]["spectral_radius"] == pytest.approx(spectral_radii(last), rel=1e-6)
    w = last.rnn.weight_hh_l1[12:24].detach().double().numpy()  # layer 1's forget block
    assert evals[-1]["spectral_radius"]["1.f"] == pytest.approx(
        np.abs(np.linalg.eigvals(w)).max(), rel=1e-5)
    assert all("grad_norm" in r for r in RunDir(run, write=False).metrics() if "loss" in r)

    assert main(["analyze", "spectra", str(run), "--batch", "2", "--length", "10",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["over_training"] == [{"step": r["step"], "radii": r["spectral_radius"]}
                                       for r in evals]
    assert spectral_radii(SyncedRNN(2, 1, cell="mingru", hidden=4)) == {}  # no square W_hh


def test_compared_runs_show_the_gradient_norm_with_and_without_clipping(tmp_path, capsys):
    """A tanh RNN on the adding task with --clip 0 and --clip 0.5: the comparison carries each
    run's logged gradient norms (before clipping) and its threshold, drawn beside the flows."""
    runs = []
    for clip in ("0", "0.5"):
        out = tmp_path / f"clip{clip}"
        assert main(["train", "synthetic", "--dataset", "adding", "--length", "20",
                     "--cell", "rnn_tanh", "--hidden", "16", "--steps", "12", "--clip", clip,
                     "--no-progress", "--out", str(out)]) == 0
        runs.append(out)
    capsys.readouterr()
    assert main(["analyze", "gradients", str(runs[0]), "--compare", str(runs[1]),
                 "--batch", "4", "--length", "20"]) == 0
    compared = json.loads((runs[0] / "analysis" / "gradients_compare.json").read_text())
    training = [r["training"] for r in compared["runs"]]
    assert [t["clip"] for t in training] == [0.0, 0.5]
    for run, t in zip(runs, training):
        rows = [r for r in RunDir(run, write=False).metrics() if "loss" in r]
        assert t["grad_norm"] == [[r["step"], r["grad_norm"]] for r in rows] and rows
    png = runs[0] / "analysis" / "gradients_compare.png"
    from PIL import Image

    assert Image.open(png).size[0] > 1100  # two panels (one is ~700 wide): flows, norms
