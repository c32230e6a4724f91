"""`rnnkit bench classifier`: the plain script is rnnkit's model (same parameters, same
logits), and the quick runs of the speed benchmark and of deck 003's table write their JSON."""

import json
import math

import pytest
import torch

from rnnkit.bench import classifier as bc
from rnnkit.cli.main import main
from rnnkit.models.classifier import READOUTS, SequenceClassifier


@pytest.fixture(autouse=True)
def _one(one_thread):
    pass


SHAPES = [  # (cell, bidirectional, layers)
    ("lstm", True, 1), ("lstm", False, 2), ("gru", False, 1), ("gru", True, 2),
    ("rnn_tanh", True, 1)]


@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("cell,bidirectional,layers", SHAPES)
def test_plain_script_has_rnnkit_parameter_count(cell, bidirectional, layers, readout):
    """Built on its own from the same settings, the plain model holds as many parameters as
    rnnkit's, tensor by tensor under the same names."""
    kw = {"cell": cell, "embed": 12, "hidden": 20, "layers": layers,
          "bidirectional": bidirectional, "readout": readout, "dropout": 0.3}
    ours = SequenceClassifier(57, 4, **kw)
    plain = bc.PlainClassifier(57, 4, **kw)
    assert bc.count_parameters(plain) == bc.count_parameters(ours)
    assert {k: v.shape for k, v in plain.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("cell,bidirectional,layers", SHAPES)
def test_plain_script_computes_rnnkit_logits(cell, bidirectional, layers, readout):
    """With rnnkit's weights the packed nn.LSTM/GRU/RNN script gives rnnkit's logits on a
    ragged batch, whichever engine rnnkit runs: its own (bptt, masked) or torch's kernel."""
    torch.manual_seed(0)
    x, lengths = torch.randint(40, (11, 7)), torch.tensor([11, 3, 8, 1, 11, 6, 9])
    plain = None
    for backend in ("bptt", "native"):
        ours = SequenceClassifier(40, 3, cell=cell, embed=6, hidden=10, layers=layers,
                                  bidirectional=bidirectional, readout=readout,
                                  backend=backend).double().eval()
        if plain is None:
            plain = bc.plain_twin(ours).eval()
            expected = plain(x, lengths)
        ours.load_state_dict(plain.state_dict())
        assert torch.allclose(ours(x, lengths), expected, atol=1e-10), backend


def test_plain_trainer_steps_on_the_tasks_batches():
    """One plain step reads the Task's first batch and lowers the loss on it (AdamW learns)."""
    s = bc.settings({"embed": 8, "hidden": 8, "batch_size": 16, "lr": 0.03, "dropout": 0.0,
                     "vocab_size": 260, "max_length": 30})
    data, tokenizer, encoded = bc.prepare(s, max_rows=64)
    assert {len(encoded[k]) for k in ("train", "val", "test")} == {64}
    assert len(set(data.classes)) == 3 and len({label for _, label in data.train}) == 3
    task = bc.new_task(s, encoded, data.classes)
    torch.manual_seed(0)
    model = bc.PlainClassifier(tokenizer.vocab_size, 3, embed=8, hidden=8)
    trainer = bc.PlainTrainer(model, task, s)
    losses = [trainer.step() for _ in range(3 * trainer.n)]
    assert trainer.n == 4 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4])


def test_quick_speed_run_writes_json_with_its_fields(tmp_path, capsys):
    path = tmp_path / "speed.json"
    assert main(["bench", "classifier", "--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "rnnkit" in out and "TF-IDF" in out and "smoke run" in out
    r = json.loads(path.read_text())
    assert {"machine", "settings", "parameters", "logit_difference", "step_seconds",
            "examples_per_second", "throughput_ratio", "native_ratio", "epochs", "rnnkit",
            "plain",
            "baseline", "goals"} <= set(r)
    assert r["parameters"]["rnnkit"] == r["parameters"]["plain"]
    assert r["logit_difference"] < 1e-4
    eps = r["examples_per_second"]
    assert set(eps) == {"plain", "rnnkit", "rnnkit_native"}
    assert eps["rnnkit"] / eps["plain"] == pytest.approx(r["throughput_ratio"])
    assert eps["rnnkit_native"] / eps["plain"] == pytest.approx(r["native_ratio"])
    for who in ("rnnkit", "plain", "baseline"):
        for k in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1"):
            assert 0 <= r[who][k] <= 1, (who, k)
    assert r["rnnkit"]["steps"] == r["plain"]["steps"]  # the same epochs of the same batches
    assert set(r["goals"]) == {"throughput_at_least_1x", "accuracy_not_lower"}


def test_quick_table_run_has_deck_003s_rows(tmp_path, capsys):
    path = tmp_path / "table.json"
    assert main(["bench", "classifier", "--table", "--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bidirectional LSTM" in out and "GRU" in out and "TF-IDF + LR, word" in out
    r = json.loads(path.read_text())
    assert [row["model"] for row in r["rows"]] == ["LSTM", "bidirectional LSTM", "GRU"]
    assert [(row["cell"], row["bidirectional"]) for row in r["rows"]] == \
        [("lstm", False), ("lstm", True), ("gru", False)]
    assert len({row["steps"] for row in r["rows"]}) == 1  # the same epoch budget
    assert set(r["baselines"]) == {"word", "char"}
    for row in [*r["rows"], *r["baselines"].values()]:
        assert all(0 <= row[k] <= 1 for k in bc.METRICS)
    assert r["best"] in {row["model"] for row in r["rows"]}


@pytest.mark.parametrize("argv,says", [
    (["--epochs", "0"], "--epochs"),
    (["--table", "--cell", "gru"], "--cell"),
    (["--threads", "0"], "--threads"),
    (["--cell", "mut1"], "--cell"),
    (["--epocs", "3"], "--epochs")])
def test_bad_flags_are_one_line_errors(argv, says, capsys):
    assert main(["bench", "classifier", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
