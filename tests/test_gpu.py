"""The GPU path: every engine of every cell on CUDA against the CPU reference, the drop-in
layers against torch's cuDNN layers, and training on CUDA (bf16 autocast) end to end.

Skipped without a CUDA device (CI has none); run on a GPU machine with
``python -m pytest tests/test_gpu.py``.
"""

import json

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.cells import available, make_cell
from rnnkit.engine import run_sequence, supported_backends

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
ENGINES = [(c, b) for c in available() for b in ("autograd", "bptt", "scan")
           if b in supported_backends(make_cell(c, 3, 3))]


def _problem(cell, T=9, B=5, seed=0):
    """Parameters, inputs and initial state in float64 on the CPU, and a mask of ragged
    lengths."""
    g = torch.Generator().manual_seed(seed)
    p = {k: (torch.rand(s, generator=g, dtype=torch.float64) - 0.5)
         for k, s in cell.parameter_shapes().items()}
    x = torch.randn(T, B, cell.input_size, generator=g, dtype=torch.float64)
    state = tuple(torch.randn(B, cell.hidden_size, generator=g, dtype=torch.float64) * 0.5
                  for _ in range(cell.num_states))
    if cell.name in ("mingru", "minlstm"):
        state = tuple(s.abs() + 0.1 for s in state)  # the log-space scan needs h > 0
    lengths = torch.tensor([T, 3, T - 2, 1, 6][:B])
    mask = torch.arange(T)[:, None] < lengths[None]
    return p, x, state, mask


def _loss_and_grads(cell, p, x, state, mask, backend, device, dtype):
    p = {k: v.to(device, dtype).requires_grad_() for k, v in p.items()}
    x = x.to(device, dtype).requires_grad_()
    state = tuple(s.to(device, dtype).requires_grad_() for s in state)
    out, final = run_sequence(cell, x, state, p, backend, mask.to(device))
    loss = out.pow(2).sum() + sum((s * (i + 2)).sum() for i, s in enumerate(final))
    grads = torch.autograd.grad(loss, [x, *state, *p.values()])
    return [out, *final, *grads]


@pytest.mark.parametrize("cell_name,backend", ENGINES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_engine_on_cuda_matches_the_cpu_reference(cell_name, backend, dtype):
    cell = make_cell(cell_name, 6, 5)
    p, x, state, mask = _problem(cell)
    want = _loss_and_grads(cell, p, x, state, mask, "autograd", "cpu", torch.float64)
    got = _loss_and_grads(cell, p, x, state, mask, backend, CUDA, dtype)
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    for w, g in zip(want, got):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.double().cpu(), w, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_drop_in_layers_match_cudnn(kind, bidirectional, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN's RNNs round to TF32
    torch.manual_seed(0)
    ref = getattr(nn, kind)(7, 16, num_layers=2, bidirectional=bidirectional).to(CUDA)
    ours = getattr(rnnkit, kind)(7, 16, num_layers=2, bidirectional=bidirectional,
                                 backend="bptt").to(CUDA)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(11, 4, 7, device=CUDA)
    (y_ref, _), (y, _) = ref(x), ours(x)
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    y_ref.sum().backward()
    y.sum().backward()
    for (name, a), b in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=2e-4, rtol=2e-4, msg=name)


def test_auto_takes_cudnn_on_cuda_and_the_scan_runs_in_parallel():
    layer = rnnkit.Recurrent("lstm", 8, 16).to(CUDA)
    assert layer.resolve_backend(torch.randn(5, 2, 8, device=CUDA)) == "native"
    cell = make_cell("mingru", 6, 5)
    p, x, state, _ = _problem(cell, T=64, B=3)
    seq = run_sequence(cell, x, state, p, "autograd")[0]
    par = run_sequence(cell, x.to(CUDA), tuple(s.to(CUDA) for s in state),
                       {k: v.to(CUDA) for k, v in p.items()}, "scan")[0]
    torch.testing.assert_close(par.cpu(), seq, atol=1e-9, rtol=1e-9)


def test_more_processes_than_gpus_is_one_clear_error(monkeypatch):
    from rnnkit.errors import UserError
    from rnnkit.train.distributed import check_gpus

    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(torch.cuda.device_count() + 1))
    with pytest.raises(UserError, match="one process per GPU"):
        check_gpus(CUDA)
    check_gpus(torch.device("cpu"))  # CPU processes: as many as wanted


def _text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log.\n" * 400)
    return path


def test_lm_trains_on_cuda_with_bf16_and_resumes(tmp_path):
    from rnnkit.cli.main import main

    out = tmp_path / "run"
    args = ["train", "lm", "--text", str(_text(tmp_path)), "--device", "cuda", "--hidden", "64",
            "--seq-len", "32", "--batch-size", "16", "--out", str(out), "--eval-every", "20"]
    assert main([*args, "--steps", "40"]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["device"].startswith("cuda") and first["val_bpc"] < 3.0
    assert main(["train", "lm", "--resume", str(out), "--steps", "80"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 80
    model = rnnkit.load(out)  # a CUDA-trained run samples on the CPU
    assert len(model.generate("the ", length=20, seed=0)) >= 20


def test_classifier_and_seq2seq_train_on_cuda(tmp_path):
    from rnnkit.cli.main import main

    csv = tmp_path / "rows.csv"
    rows = [f"{w} {w} day,{lab}" for w, lab in (("good", "pos"), ("bad", "neg"))] * 100
    csv.write_text("text,label\n" + "\n".join(rows) + "\n")
    assert main(["train", "classifier", "--csv", str(csv), "--device", "cuda", "--steps", "30",
                 "--hidden", "32", "--out", str(tmp_path / "cls"), "--no-baseline"]) == 0
    s = json.loads((tmp_path / "cls" / "summary.json").read_text())
    assert s["device"].startswith("cuda") and s["test_accuracy"] == 1.0
    assert main(["train", "seq2seq", "--dataset", "addition", "--digits", "2", "--device",
                 "cuda", "--steps", "30", "--hidden", "32", "--out",
                 str(tmp_path / "s2s")]) == 0
    s = json.loads((tmp_path / "s2s" / "summary.json").read_text())
    assert s["device"].startswith("cuda") and s["status"] in ("completed", "budget")


def _new_tasks_train_on(device: str, tmp_path) -> None:
    """The tagger, the generator from a label, the forecaster and word2vec (its torch engine)
    train on ``device``, and each run loads back on the CPU."""
    from rnnkit.cli.main import main

    conll = tmp_path / "tags.conll"
    sent = "the DT\ncat NN\nsat VB\n\na DT\ndog NN\nran VB\n\n"
    conll.write_text(sent * 100)
    csv = tmp_path / "rows.csv"
    csv.write_text("text,label\n" + "".join(f"good good day {i},pos\nbad bad night {i},neg\n"
                                           for i in range(100)))
    runs = {
        "tagger": ["--conll", str(conll), "--hidden", "32", "--steps", "30"],
        "generator": ["--csv", str(csv), "--hidden", "32", "--steps", "30"],
        "forecaster": ["--dataset", "sunspots", "--hidden", "16", "--steps", "30"],
        "word2vec": ["--text", str(_text(tmp_path)), "--engine", "torch", "--min-count", "1",
                     "--embed", "16", "--epochs", "1"],
    }
    for task, args in runs.items():
        out = tmp_path / task
        assert main(["train", task, *args, "--device", device, "--no-progress",
                     "--out", str(out)]) == 0, task
        s = json.loads((out / "summary.json").read_text())
        assert s["device"].startswith(device), (task, s["device"])
        assert s["status"] in ("completed", "budget", "early_stopped"), (task, s["status"])
        assert rnnkit.load(out) is not None


def test_tagger_generator_forecaster_and_word2vec_train_on_cuda(tmp_path):
    _new_tasks_train_on("cuda", tmp_path)
