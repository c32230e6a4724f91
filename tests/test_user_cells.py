"""Cells of your own: registered or named FILE.py:CLASS, run by every layer and backend but
native, checked by `rnnkit gradcheck`, trained and loaded back by the command line."""

import shutil
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cells import Cell, cell_class, register
from rnnkit.cli.main import main
from rnnkit.engine import run_sequence, supported_backends
from rnnkit.engine.gradcheck import check_cell
from rnnkit.errors import UserError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_cell.py"
SPEC = f"{EXAMPLE}:MyCell"
TINY = ["--hidden", "8", "--embed", "8", "--batch-size", "4", "--seq-len", "8", "--steps", "2",
        "--warmup", "1", "--eval-every", "2", "--eval-tokens", "64", "--sample-length", "5",
        "--no-progress"]

WRONG = '''
import torch
from rnnkit.cells import Cell


class Wrong(Cell):
    name = "janet_wrong"
    gates = 2
    gate_names = ("f", "c")

    def forward_step(self, xp, state, p):
        (h,) = state
        H = self.hidden_size
        s = xp + self.recurrent(h, p)
        f, c = torch.sigmoid(s[:, :H]), torch.tanh(s[:, H:])
        return (c + f * (h - c),), (h, f, c)

    def backward_step(self, saved, dstate, p):
        h, f, c = saved
        (dh,) = dstate
        ds_f = dh * (h - c) * f * (1 - f)
        ds_c = dh * (1 - f) * (1 - c)  # wrong: tanh' = 1 - c^2
        ds = torch.cat([ds_f, ds_c], dim=1)
        return ds, ds, (dh * f + ds @ p["weight_hh"],), {}
'''


class IndRNN(Cell):
    """IndRNN (Li et al. 2018): h' = relu(W x + b + u * h), u a vector: an extra parameter."""

    name = "test_indrnn"
    recurrent_extras = ("u",)

    def parameter_shapes(self):
        H = self.hidden_size
        return {"weight_ih": (H, self.input_size), "bias_ih": (H,), "u": (H,)}

    def forward_step(self, xp, state, p):
        (h,) = state
        a = torch.relu(xp + p["u"] * h)
        return (a,), (a, h)

    def backward_step(self, saved, dstate, p):
        a, h = saved
        dz = dstate[0] * (a > 0).to(a.dtype)
        return dz, dz, (dz * p["u"],), {"u": (dz * h).sum(0)}


class StepOnly(Cell):
    """A cell with its step math only: autograd runs it."""

    name = "test_step_only"

    def step(self, xp, state, p):
        return (torch.tanh(xp + self.recurrent(state[0], p)),)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_example_cell_on_every_backend_agrees():
    assert supported_backends(cell_class(SPEC)) == ["auto", "bptt", "autograd"]
    torch.manual_seed(0)
    ref = rnnkit.Recurrent(SPEC, 3, 4, num_layers=2, bidirectional=True,
                           backend="autograd").double()
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 5])
    results = {}
    for backend in ("autograd", "bptt", "auto"):
        layer = rnnkit.Recurrent(SPEC, 3, 4, num_layers=2, bidirectional=True,
                                 backend=backend).double()
        layer.load_state_dict(ref.state_dict())
        out, h = layer(x, lengths=lengths)
        grads = torch.autograd.grad(out.sum() + h.sum(), list(layer.parameters()))
        results[backend] = (out, grads)
    for backend, (out, grads) in results.items():
        torch.testing.assert_close(out, results["autograd"][0], msg=backend)
        for a, b in zip(grads, results["autograd"][1]):
            torch.testing.assert_close(a, b, msg=backend)
    with pytest.raises(ValueError, match="native"):
        rnnkit.Recurrent(SPEC, 3, 4, backend="native")


def test_example_cell_bptt_passes_torch_gradcheck():
    cell = cell_class(SPEC)(3, 4)
    g = torch.Generator().manual_seed(0)
    p = {k: (torch.rand(s, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
         for k, s in cell.parameter_shapes().items()}
    x = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)

    def f(x, h0, *tensors):
        out, final = run_sequence(cell, x, (h0,), dict(zip(p, tensors)), "bptt")
        return out, *final

    assert torch.autograd.gradcheck(f, (x, h0, *p.values()))


def test_register_by_name_and_the_contract():
    register(IndRNN)
    assert "test_indrnn" in rnnkit.cells.available()
    layer = rnnkit.Recurrent("test_indrnn", 3, 5, backend="bptt")
    out, h = layer(torch.randn(4, 2, 3))
    out.sum().backward()
    assert out.shape == (4, 2, 5) and layer.u_l0.grad.shape == (5,)
    assert check_cell("test_indrnn").ok  # the extra parameter's gradient too

    class Clash(IndRNN):
        name = "lstm"

    with pytest.raises(ValueError, match="rnnkit's own"):
        register(Clash)

    class Nameless(Cell):
        def step(self, xp, state, p):
            return state

    with pytest.raises(ValueError, match="needs a name"):
        register(Nameless)

    class NoMath(Cell):
        name = "test_no_math"

    with pytest.raises(ValueError, match="no step math"):
        register(NoMath)


def test_a_cell_without_backward_runs_on_autograd_only():
    register(StepOnly)
    assert supported_backends(StepOnly) == ["auto", "autograd"]
    with pytest.raises(ValueError, match="backends are auto, autograd"):
        rnnkit.Recurrent("test_step_only", 3, 4, backend="bptt")
    torch.manual_seed(0)
    auto = rnnkit.Recurrent("test_step_only", 3, 4)  # auto: autograd, not bptt
    ref = rnnkit.Recurrent("test_step_only", 3, 4, backend="autograd")
    ref.load_state_dict(auto.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(auto(x)[0], ref(x)[0])
    auto(x)[0].sum().backward()
    assert all(p.grad is not None for p in auto.parameters())
    with pytest.raises(ValueError, match="no backward step"):
        check_cell("test_step_only")


def test_gradcheck_command_right_and_wrong(tmp_path, capsys):
    assert main(["gradcheck", SPEC]) == 0
    assert "backward matches autograd" in capsys.readouterr().out
    wrong = tmp_path / "wrong.py"
    wrong.write_text(WRONG)
    assert main(["gradcheck", f"{wrong}:Wrong"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["step", "gradient"]
    assert out[1].split()[:2] == ["1", "weight_ih"] and "(rows c)" in out[1]
    assert "differs from autograd, first at step 1" in out[-1] and "weight_hh (rows c)" in out[-1]


def test_gradcheck_command_bad_files(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    cases = [(f"{broken}:X", "importing cell file"), (f"{EXAMPLE}:Nope", "defines no class Nope"),
             (f"{tmp_path}/missing.py:X", "not found"), ("no_such_cell", "unknown cell")]
    for spec, words in cases:
        assert main(["gradcheck", spec]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err


def test_train_with_a_cell_file_load_it_and_a_moved_file(tmp_path, capsys, monkeypatch):
    shutil.copy(EXAMPLE, tmp_path / "cell.py")
    monkeypatch.chdir(tmp_path)  # a relative FILE, recorded absolute
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 40)
    out = tmp_path / "run"
    assert main(["train", "lm", "--cell", "cell.py:MyCell", "--text", str(text), *TINY,
                 "--out", str(out)]) == 0
    model = rnnkit.load(out)
    assert model.config["cell"] == f"{tmp_path / 'cell.py'}:MyCell"
    assert len(model.generate("the", length=5, seed=0)) == 8
    (tmp_path / "cell.py").rename(tmp_path / "elsewhere.py")
    with pytest.raises(UserError, match="cell.py not found"):
        rnnkit.load(out)
    capsys.readouterr()
    assert main(["sample", str(out), "--length", "5"]) == 2
    assert "not found" in capsys.readouterr().err


def test_train_refuses_a_bad_cell_file_or_backend_in_one_line(tmp_path, capsys):
    step_only = tmp_path / "step_only.py"
    step_only.write_text("import torch\nfrom rnnkit.cells import Cell\n\n\n"
                         "class Plain(Cell):\n    name = 'plain'\n\n"
                         "    def step(self, xp, state, p):\n"
                         "        return (torch.tanh(xp + self.recurrent(state[0], p)),)\n")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    text = tmp_path / "text.txt"
    text.write_text("abc " * 50)
    cases = [([f"{step_only}:Plain", "--backend", "bptt"], "its backends are auto, autograd"),
             ([f"{broken}:X"], "RuntimeError: boom")]
    for args, words in cases:
        argv = ["train", "lm", "--cell", *args, "--text", str(text), *TINY,
                "--out", str(tmp_path / "never")]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("rnnkit: error: ") and words in err[-1], err
