"""`rnnkit train synthetic`: the generators against plain arithmetic, the model, a learned
adder that stays exact on 1,000-bit inputs, resume, errors, summary.json."""

import json
import math
import random
import signal

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.data import synthetic as S
from rnnkit.errors import UserError
from rnnkit.models.feedforward import BitMLP
from rnnkit.models.synced import SyncedRNN
from rnnkit.train.checkpoint import load_checkpoint, load_run
from rnnkit.train.synthetic import run_synthetic
from rnnkit.train.trainer import Trainer

TINY = {"hidden": 8, "batch_size": 8, "steps": 12, "warmup": 2, "val_size": 20,
        "test_size": 10, "feedforward_steps": 0, "progress": False}
VOLATILE = ("elapsed", "examples_per_second", "train_seconds", "out")


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _as_int(bits) -> int:
    return sum(int(b) << i for i, b in enumerate(bits))


def _bits(numbers, n):
    return torch.tensor([[(x >> i) & 1 for i in range(n)] for x in numbers])


# ---- generators -------------------------------------------------------------------------

def test_binary_add_is_python_addition():
    rng = random.Random(0)
    for n in (1, 3, 8, 64, 200):
        a = [rng.getrandbits(n) for _ in range(50)]
        b = [rng.getrandbits(n) for _ in range(50)]
        e = S.binary_add(_bits(a, n), _bits(b, n))
        assert e.x.shape == (n + 1, 50, 2) and e.y.shape == (n + 1, 50)
        for k in range(50):
            assert _as_int(e.x[:, k, 0]) == a[k] and _as_int(e.x[:, k, 1]) == b[k]
            assert _as_int(e.y[:, k]) == a[k] + b[k]  # LSB first, the last step the carry


def test_binary_add_batches_and_long_test_are_sums():
    data = S.Synthetic("binary-add", bits=8, seed=3)
    for e in (data.batch(5, 64), data.fixed("test", size=5)["long"]):
        for k in range(len(e)):
            a, b = _as_int(e.x[:, k, 0]), _as_int(e.x[:, k, 1])
            assert _as_int(e.y[:, k]) == a + b
    assert data.fixed("test", size=5)["long"].x.shape == (S.LONG_BITS + 1, 5, 2)


def test_parity_is_a_running_xor():
    data = S.Synthetic("parity", bits=8, seed=0)
    for e in (data.batch(0, 32), data.fixed("test", size=4)["long"]):
        for k in range(len(e)):
            xor = 0
            for t in range(e.x.shape[0]):
                xor ^= int(e.x[t, k, 0])
                assert int(e.y[t, k]) == xor


def test_adding_has_one_marker_in_each_half_and_sums_them():
    for T in (2, 7, 50):
        e = S.adding(T, 200, torch.Generator().manual_seed(T))
        values, markers = e.x[..., 0], e.x[..., 1]
        assert e.x.shape == (T, 200, 2) and e.y.shape == (200,)
        assert ((values >= 0) & (values <= 1)).all()
        assert (markers.sum(0) == 2).all()
        assert (markers[:T // 2].sum(0) == 1).all() and (markers[T // 2:].sum(0) == 1).all()
        assert torch.allclose(e.y, (values * markers).sum(0))


def test_copy_layout():
    T = 12
    e = S.copy(T, 30, torch.Generator().manual_seed(0))
    assert e.x.shape == e.y.shape == (T + 20, 30)
    symbols = e.x[:10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (e.x[10:T + 9] == S.BLANK).all() and (e.x[T + 9] == S.DELIMITER).all()
    assert (e.x[T + 10:] == S.BLANK).all()
    assert (e.y[:T + 10] == S.BLANK).all() and torch.equal(e.y[T + 10:], symbols)
    assert S.copy_baseline_loss(T) == pytest.approx(10 * torch.log(torch.tensor(8.0)) / (T + 20))


@pytest.mark.parametrize("dataset, kw", [("binary-add", {"bits": 8}), ("parity", {"bits": 6}),
                                         ("adding", {"length": 20}), ("copy", {"length": 5})])
def test_batches_are_a_function_of_seed_and_step(dataset, kw):
    a, b = S.Synthetic(dataset, seed=1, **kw), S.Synthetic(dataset, seed=1, **kw)
    assert torch.equal(a.batch(7, 16).x, b.batch(7, 16).x)
    assert not torch.equal(a.batch(7, 16).x, a.batch(8, 16).x)
    assert not torch.equal(a.batch(7, 16).x, S.Synthetic(dataset, seed=2, **kw).batch(7, 16).x)
    # the fixed sets are the same for every training seed
    val_a, val_c = a.fixed("val", 30)[""], S.Synthetic(dataset, seed=9, **kw).fixed("val", 30)[""]
    assert torch.equal(val_a.x, val_c.x) and torch.equal(val_a.y, val_c.y)


def test_training_never_draws_a_held_out_input():
    data = S.Synthetic("binary-add", bits=4, seed=0)  # 256 pairs: every one is seen often
    weights = 2 ** torch.arange(4)
    codes = lambda e: set(  # noqa: E731
        ((e.x[:4, :, 0].T.long() * weights).sum(1)
         + 16 * (e.x[:4, :, 1].T.long() * weights).sum(1)).tolist())
    train = set().union(*(codes(data.batch(step, 64)) for step in range(50)))
    held_out = codes(data.fixed("val", 1000)[""]) | codes(data.fixed("test", 1000)["heldout"])
    assert not train & held_out
    assert len(train) + len(held_out) == 256  # the two halves cover the space


def test_noise_is_on_training_inputs_only():
    data = S.Synthetic("parity", bits=8, seed=0)
    clean, noisy = data.batch(3, 16), data.batch(3, 16, noise=0.2)
    assert torch.equal(clean.y, noisy.y) and not torch.equal(clean.x, noisy.x)
    assert ((noisy.x - clean.x).abs().max() < 2)


# ---- models -----------------------------------------------------------------------------

def test_synced_model_shapes_and_config():
    each = SyncedRNN(2, 2, cell="gru", hidden=8, layers=2)
    assert each(torch.rand(9, 3, 2)).shape == (9, 3, 2)
    last = SyncedRNN(2, 1, cell="mingru", hidden=8, readout="last")
    assert last(torch.rand(20, 3, 2)).shape == (3, 1)
    symbols = SyncedRNN(10, 9, hidden=8, embed=4)
    assert symbols(torch.randint(0, 10, (25, 3))).shape == (25, 3, 9)
    assert SyncedRNN(**symbols.config).config == symbols.config
    with pytest.raises(ValueError, match="symbols"):
        symbols(torch.rand(25, 3, 10))
    with pytest.raises(UserError, match="unknown cell"):
        SyncedRNN(2, 2, cell="transformer")


def test_feedforward_input_size_is_fixed():
    mlp = BitMLP(16, 9, hidden=8)
    with pytest.raises(ValueError, match="exactly 16 input bits"):
        mlp.predict(torch.zeros(3, 2000))


# ---- training runs ----------------------------------------------------------------------

def test_learned_adder_is_exact_on_1000_bit_inputs(tmp_path):
    s = run_synthetic({"dataset": "binary-add", "steps": 600, "val_size": 200, "test_size": 50,
                       "feedforward_steps": 300, "progress": False, "out": str(tmp_path / "r")})
    assert s["task"] == "synthetic" and s["status"] == "completed"
    assert s["val_exact"] == 1.0 and s["test_exact_heldout"] == 1.0
    assert s["test_exact_1000bit"] == 1.0 and s["test_bit_accuracy"] == 1.0 and s["solved"]
    assert s["test_feedforward_exact_heldout"] < 1.0  # deck 002: the fixed-size net errs
    assert s["test_feedforward_exact_1000bit"] is None and s["feedforward_input_bits"] == 16
    run = load_run(tmp_path / "r")  # the checkpoint rebuilds the model
    assert isinstance(run.model, SyncedRNN) and run.model.config["cell"] == "rnn_tanh"


def _final(out):
    weights = load_checkpoint(out / "checkpoints" / "last.safetensors").model_state
    rows = [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = {k: v for k, v in json.loads((out / "summary.json").read_text()).items()
               if k not in VOLATILE}
    return weights, rows, summary


@pytest.mark.parametrize("dataset, kw", [("parity", {"bits": 6}), ("adding", {"length": 6}),
                                         ("copy", {"length": 4, "embed": 4})])
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, dataset, kw):
    settings = {**TINY, "dataset": dataset, "steps": 30, "checkpoint_every": 4,
                "eval_every": 10, "log_every": 3, **kw}
    run_synthetic({**settings, "out": str(tmp_path / "ref")})
    stop_at = iter([13, 22])
    when = {"step": next(stop_at)}
    real = Trainer._interrupted

    def sigterm_at_step(self):  # as if SIGTERM came during that step
        if self.p.step == when["step"]:
            self.stop_signal = signal.SIGTERM
        return real(self)

    monkeypatch.setattr(Trainer, "_interrupted", sigterm_at_step)
    out = tmp_path / "run"
    assert run_synthetic({**settings, "out": str(out)})["status"] == "interrupted"
    when["step"] = next(stop_at)
    assert run_synthetic({"resume": str(out)})["status"] == "interrupted"
    monkeypatch.setattr(Trainer, "_interrupted", real)
    assert run_synthetic({"resume": str(out)})["status"] == "completed"
    (w_ref, rows_ref, sum_ref), (w, rows, summary) = _final(tmp_path / "ref"), _final(out)
    assert all(torch.equal(w_ref[k], w[k]) for k in w_ref)
    assert rows == rows_ref and summary == sum_ref


@pytest.mark.parametrize("dataset, keys", [
    ("binary-add", ["val_exact", "test_exact_1000bit", "test_bit_accuracy",
                    "test_exact_heldout", "test_feedforward_exact_heldout"]),
    ("adding", ["val_mse", "test_mse", "test_mse_ratio", "trivial_mse"]),
    ("copy", ["val_accuracy", "test_accuracy", "test_loss", "baseline_loss"]),
])
def test_cli_summary_keys(tmp_path, capsys, dataset, keys):
    out = tmp_path / "run"
    argv = ["train", "synthetic", "--dataset", dataset, "--hidden", "8", "--batch-size", "8",
            "--steps", "4", "--warmup", "1", "--val-size", "10", "--test-size", "5",
            "--feedforward-steps", "10" if dataset == "binary-add" else "0",
            "--no-progress", "--out", str(out), "--json"]
    if dataset != "binary-add":
        argv += ["--length", "5"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["task"] == "synthetic" and summary["dataset"] == dataset
    assert all(k in summary for k in ["val_loss", "solved", "examples_per_second", *keys])
    assert isinstance(summary["solved"], bool)
    config = json.loads((out / "config.json").read_text())
    assert config["hidden"] == 8 and "cell" in config["chosen_for_dataset"]


def test_cli_report_without_json(tmp_path, capsys):
    assert main(["train", "synthetic", "--dataset", "parity", "--bits", "4", "--steps", "3",
                 "--test-size", "3", "--val-size", "5", "--feedforward-steps", "5",
                 "--no-progress", "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "1,000-bit inputs exact" in text and "feed-fwd:" in text and "solved:" in text


@pytest.mark.parametrize("argv, words", [
    (["--dataset", "sorting"], "unknown synthetic dataset 'sorting'"),
    (["--dataset", "adding", "--length", "1"], "--length must be a whole number of at least 2"),
    (["--dataset", "copy", "--length", "0"], "--length must be a whole number of at least 1"),
    (["--dataset", "parity", "--length", "50"], "--length is for adding and copy"),
    (["--dataset", "adding", "--bits", "8"], "--bits is for binary-add and parity"),
    (["--dataset", "binary-add", "--bits", "31"], "--bits must be a whole number from 1 to 30"),
    (["--dataset", "adding", "--cell", "transformer"], "unknown cell 'transformer'"),
    (["--dataset", "adding", "--backend", "scan"], "backend 'scan' cannot run cell 'lstm'"),
    (["--dataset", "adding", "--noise", "0.1"], "--noise is for the bit tasks"),
    (["--dataset", "parity", "--noise", "-1"], "--noise must be a number >= 0"),
    (["--dataset", "parity", "--embed", "8"], "--embed is for copy's symbols"),
    (["--dataset", "copy", "--embed", "0"], "--embed must be a whole number of at least 1"),
    (["--dataset", "parity", "--val-size", "0"], "--val-size must be a whole number of at"),
    (["--dataset", "parity", "--feedforward-steps", "-1"], "--feedforward-steps must be"),
    (["--dataset", "parity", "--lr", "-1"], "--lr must be a positive number"),
    (["--dataset", "adding", "--cell", "rnn_tanh", "--init", "chrono"],
     "--init chrono sets the bias of a forget/keep gate, and cell 'rnn_tanh' has none"),
    (["--dataset", "adding", "--cell", "nas", "--forget-bias", "1"],
     "--forget-bias sets the bias of a forget/keep gate"),
    (["--dataset", "adding", "--chrono-tmax", "1"], "--chrono-tmax is the longest memory span"),
    (["--dataset", "adding", "--init", "identity"], "init='identity' (IRNN) is for single-gate"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "never"
    assert main(["train", "synthetic", *argv, "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err
    assert not out.exists()


def test_api_errors_are_user_errors(tmp_path):
    from rnnkit.train.lm import run_lm

    with pytest.raises(UserError, match="unknown synthetic dataset"):
        run_synthetic({"dataset": "nope", "out": str(tmp_path / "r")})
    run = str(tmp_path / "a")
    run_synthetic({**TINY, "dataset": "adding", "length": 4, "steps": 2, "out": run})
    with pytest.raises(UserError, match="is a synthetic run"):
        run_lm({"resume": run})
    with pytest.raises(UserError, match="--length differs"):
        run_synthetic({"resume": run, "length": 8})
    assert run_synthetic({"resume": run, "steps": 4})["steps"] == 4  # a larger budget is fine


# ---- initialisation by dataset and cell ------------------------------------------------------

def _bias(model, gate):
    """The total bias of one gate of layer 0 (b_ih + b_hh)."""
    rnn = model.rnn
    rows = slice(*(k * rnn.hidden_size for k in (rnn.cells[0].gate_names.index(gate),
                                                 rnn.cells[0].gate_names.index(gate) + 1)))
    total = rnn.bias_ih_l0 + getattr(rnn, "bias_hh_l0", 0)  # minGRU has no b_hh
    return total[rows].detach()


@pytest.mark.parametrize("dataset, cell, init, tmax", [
    ("adding", "lstm", "chrono", 60), ("adding", "gru", "chrono", 60),
    ("copy", "mingru", "chrono", 70), ("adding", "rnn_tanh", "default", None),
    ("adding", "lstm_nofg", "default", None), ("parity", "lstm", "default", None)])
def test_long_memory_tasks_start_gated_cells_with_chrono(tmp_path, dataset, cell, init, tmax):
    from rnnkit.train.synthetic import DEFAULTS, build_model, fill_dataset_defaults

    size = {"bits": 4} if dataset == "parity" else {"length": 60}
    s = {**DEFAULTS, "dataset": dataset, "cell": cell, "hidden": 16, **size}
    chosen = fill_dataset_defaults(s)
    assert (s["init"], s["chrono_tmax"]) == (init, tmax) and "init" in chosen
    model = build_model(s)
    assert model.config.get("init", "default") == init
    if init == "chrono":  # keep-gate biases log U(1, T_max - 1): memory spans up to T_max
        gate, sign = next(g for g in model.rnn.cells[0].keep_gates
                          if g[0] in model.rnn.cells[0].gate_names)
        b = sign * _bias(model, gate)
        assert b.min() >= 0 and b.max() <= math.log(tmax - 1) + 1e-6 and b.max() > 2.5
        assert SyncedRNN(**model.config).config == model.config


def test_init_flags_override_and_reach_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "synthetic", "--dataset", "adding", "--length", "6", "--hidden", "8",
                 "--init", "default", "--forget-bias", "1", "--steps", "1", "--val-size", "4",
                 "--test-size", "4", "--no-progress", "--out", str(out), "--json"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["init"] == "default" and "init" not in config["chosen_for_dataset"]
    assert config["model"]["forget_bias"] == 1.0 and "init" not in config["model"]
    init = load_checkpoint(out / "checkpoints" / "init.safetensors")
    f = init.model_state["rnn.bias_ih_l0"][8:16]  # lstm: i, f, g, o
    assert torch.equal(f, torch.ones(8))


def test_long_memory_tasks_default_to_steps_that_grow_with_t():
    from rnnkit.train.runs import settings_for
    from rnnkit.train.synthetic import DEFAULTS, default_steps, fill_dataset_defaults

    assert default_steps("adding", 50) < default_steps("adding", 200) < default_steps("adding", 500)
    s = settings_for({"dataset": "adding", "length": 200}, DEFAULTS)
    assert "steps" in fill_dataset_defaults(s)
    assert (s["steps"], s["max_time"]) == (default_steps("adding", 200), None)
    s = settings_for({"dataset": "copy", "length": 50, "max_time": 30.0}, DEFAULTS)
    fill_dataset_defaults(s)  # a budget given: no steps on top of it
    assert (s["steps"], s["max_time"]) == (None, 30.0)
    s = settings_for({"dataset": "parity"}, DEFAULTS)
    fill_dataset_defaults(s)
    assert s["steps"] == 2000 and s["init"] == "default"


def test_seq_len_is_length(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "synthetic", "--dataset", "adding", "--seq-len", "7", "--hidden", "4",
                 "--steps", "1", "--val-size", "2", "--test-size", "2", "--no-progress",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["length"] == 7


def test_a_length_too_long_for_memory_is_one_line_before_anything_is_written(tmp_path, capsys,
                                                                            monkeypatch):
    """Running out of memory kills the process without a word: where a training step and the
    fixed sets would not fit, the run says so and names a --length that does."""
    from rnnkit.train import distributed

    monkeypatch.setattr(distributed, "free_memory", lambda device: 2**30)  # 1 GiB free
    out = tmp_path / "never"
    assert main(["train", "synthetic", "--dataset", "copy", "--length", "100000", "--steps", "2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "copy at --length 100,000 needs about 40 GiB" in err[0], err
    assert "more than the 1 GiB free" in err[0] and "--length 2,252 or less" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("dataset, rows, hidden, layers, sets", [
    ("copy", 64, 128, 1, 2000), ("adding", 64, 64, 1, 2000), ("adding", 8, 256, 2, 200),
    ("copy", 1, 16, 1, 2)])
def test_the_length_the_memory_error_names_fits_and_a_longer_one_does_not(dataset, rows, hidden,
                                                                         layers, sets):
    from rnnkit.train.synthetic import check_memory

    s = {"dataset": dataset, "length": 10**9, "batch_size": rows, "hidden": hidden,
         "layers": layers, "val_size": sets // 2, "test_size": sets - sets // 2}
    free = 3 * 2**30
    with pytest.raises(UserError) as e:
        check_memory(s, free)
    fits = int(str(e.value).rsplit("--length ", 1)[1].split()[0].replace(",", ""))
    check_memory({**s, "length": fits}, free)  # no error
    with pytest.raises(UserError):
        check_memory({**s, "length": fits + 1}, free)
    check_memory(s, None)  # free memory unknown: no check
    check_memory({**s, "dataset": "parity"}, 0)  # the bit tasks are bounded by --bits


@pytest.mark.parametrize("dataset", ["copy", "adding"])
def test_scoring_in_smaller_chunks_for_long_sequences_gives_the_same_metrics(monkeypatch,
                                                                            dataset):
    """A long T scores fewer examples a forward pass (their outputs within EVAL_BYTES): the
    means over the set are those of one pass."""
    from rnnkit.train import distributed as D
    from rnnkit.train import synthetic as train_s

    s = {**train_s.DEFAULTS, **TINY, "dataset": dataset, "length": 30}
    train_s.fill_dataset_defaults(s)
    s.update(hidden=8, val_size=23)
    model = train_s.build_model(s)
    task = train_s.SyntheticTask(S.Synthetic(dataset, length=30, seed=0), s, D.Dist(),
                                 torch.device("cpu"))
    whole = task.evaluate(model, "val")
    per_example = task.sets["val"][""].x.shape[0] * 8 * 8
    monkeypatch.setattr(train_s, "EVAL_BYTES", 5 * per_example)  # chunks of 5, 5, ... 3
    chunked = task.evaluate(model, "val")
    assert chunked.keys() == whole.keys() and len(whole) >= 2
    for key in whole:
        assert chunked[key] == pytest.approx(whole[key], rel=1e-5)


def test_free_memory_reads_the_system_s_available_memory():
    from rnnkit.train.distributed import free_memory

    free = free_memory(torch.device("cpu"))
    try:
        total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo")
                     if line.startswith("MemTotal:"))
    except OSError:  # not Linux: nothing to read, no check
        assert free is None
        return
    assert isinstance(free, int) and 0 < free <= total
