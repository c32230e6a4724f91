"""The sequence classifier: the model's readouts on padded batches, the metrics, the user's CSV
and its errors, `rnnkit train classifier`, resume, `rnnkit predict` and `rnnkit.load`."""

import csv
import io
import json
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.labelled import load_labelled, read_labelled
from rnnkit.errors import UserError
from rnnkit.models.classifier import READOUTS, SequenceClassifier
from rnnkit.train import trainer as trainer_mod
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.classifier import class_weights, classification_scores, run_classifier

TINY = {"hidden": 16, "embed": 8, "batch_size": 16, "warmup": 5, "lr": 0.02,
        "progress": False, "baseline": False}
WORDS = "the a cat dog sat ran on under mat tree big small red blue".split()


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    """Rows a model learns in a few steps: the label says whether the text holds "zebra"."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
            yes = i % 2 == 0
            if yes:
                words.insert(rng.randrange(len(words) + 1), "zebra")
            w.writerow([i, " ".join(words), "zebra" if yes else "none"])
    return path


# ---- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("backend", ["native", "bptt"])
def test_a_padded_batch_predicts_what_each_item_alone_predicts(readout, bidirectional, backend):
    torch.manual_seed(0)
    m = SequenceClassifier(20, 3, embed=6, hidden=8, layers=2, readout=readout,
                           bidirectional=bidirectional, backend=backend).double().eval()
    lengths = torch.tensor([5, 1, 3, 4])
    x = torch.randint(20, (5, 4))
    batch = m(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = m(x[:n, b:b + 1], torch.tensor([n]))
        assert torch.allclose(batch[b], alone[0], atol=1e-12, rtol=0), (b, readout)
    feat = SequenceClassifier(None, 2, input_features=4, hidden=8, readout=readout,
                              bidirectional=bidirectional, cell="gru",
                              backend=backend).double().eval()
    f = torch.randn(5, 4, 4, dtype=torch.float64)
    batch = feat(f, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(batch[b], feat(f[:n, b:b + 1], torch.tensor([n]))[0], atol=1e-12)


def test_macro_f1_and_accuracy_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    g = torch.Generator().manual_seed(0)
    for C in (2, 3, 5):
        y, p = torch.randint(C, (200,), generator=g), torch.randint(C, (200,), generator=g)
        p[p == C - 1] = 0  # a class never predicted
        got = classification_scores(y, p, C)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    y, p = torch.tensor([0, 0, 2]), torch.tensor([0, 2, 2])  # class 1 nowhere: left out
    assert classification_scores(y, p, 3)["macro_f1"] == pytest.approx(
        f1_score(y, p, average="macro"))


def test_balanced_class_weights_are_sklearns():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0, 0, 0, 1, 2, 2])
    want = compute_class_weight("balanced", classes=np.arange(3), y=y.numpy())
    assert torch.allclose(class_weights(y, 3, "balanced"), torch.tensor(want).float())
    assert class_weights(y, 3, "none") is None


# ---- the data -----------------------------------------------------------------------------

def test_reading_and_splitting_a_users_file(tmp_path):
    rows = read_labelled(_csv(tmp_path / "a.csv", 100))
    assert len(rows) == 100 and rows[0][1] == "zebra" and "zebra" in rows[0][0]
    tsv = tmp_path / "a.tsv"
    tsv.write_text("text\tlabel\nhello, world\tx\n\"two\nlines\"\ty\n", encoding="utf-8")
    assert read_labelled(tsv) == [("hello, world", "x"), ("two\nlines", "y")]
    d = load_labelled(csv_path=tmp_path / "a.csv", seed=1)
    assert (len(d.train), len(d.val), len(d.test)) == (80, 10, 10)
    assert sum(label == "zebra" for _, label in d.val) == 5  # stratified
    assert load_labelled(csv_path=tmp_path / "a.csv", seed=1).val == d.val
    assert load_labelled(csv_path=tmp_path / "a.csv", seed=2).val != d.val


def test_the_builtin_sentiment_split_is_fixed():
    try:
        d = load_labelled("sentiment", seed=0)
    except UserError as e:
        pytest.skip(str(e))
    assert d.classes == ["negative", "neutral", "positive"] and d.split == "fixed"
    n = len(d.train) + len(d.val) + len(d.test)
    assert 36_000 < n < 38_200 and abs(len(d.test) - n / 10) < 5
    again = load_labelled("sentiment", seed=5)
    assert again.test == d.test and again.val == d.val
    assert not {t for t, _ in d.test} & {t for t, _ in d.train}  # no tweet on both sides


# ---- training -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run shared by the tests that only read it."""
    d = tmp_path_factory.mktemp("clf")
    summary = run_classifier({**TINY, "csv": str(_csv(d / "rows.csv")), "steps": 90,
                              "eval_every": 30, "baseline": True, "tokenizer": "word",
                              "out": str(d / "run")})
    return d / "run", summary


def test_the_run_directory_holds_what_every_task_writes(trained):
    run, summary = trained
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["task"] == "classifier" and on_disk["status"] == "completed"
    for key in ("val_loss", "val_accuracy", "val_macro_f1", "test_loss", "test_accuracy",
                "test_macro_f1", "val_baseline_accuracy", "test_baseline_accuracy",
                "test_baseline_macro_f1", "examples_per_second", "train_examples",
                "val_examples", "test_examples", "classes"):
        assert key in on_disk, key
    assert on_disk["classes"] == ["none", "zebra"] and on_disk["train_examples"] == 240
    assert on_disk["val_accuracy"] > 0.9  # "zebra" or not is learnt in 90 steps
    for name in ("config.json", "metrics.jsonl", "loss.png", "confusion.txt", "confusion.png",
                 "checkpoints/best.safetensors", "checkpoints/tokenizer.json"):
        assert (run / name).is_file(), name
    matrix = (run / "confusion.txt").read_text().splitlines()
    counts = [int(v) for line in matrix[4:6] for v in line.split()[1:]]
    assert sum(counts) == on_disk["test_examples"]


def test_load_predicts_and_the_cli_prints_the_same(trained, capsys, monkeypatch):
    run, _ = trained
    p = rnnkit.load(run)
    texts = ["the zebra sat", "the cat sat on the mat"]
    labels = p.predict(texts)
    assert [label for label, _ in labels] == ["zebra", "none"]
    probs = p.probabilities(texts)
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))
    assert labels[0][1] == pytest.approx(float(probs[0].max()))
    monkeypatch.setattr("sys.stdin", io.StringIO("the zebra sat\n\nthe cat sat on the mat\n"))
    assert main(["predict", str(run)]) == 2  # the empty line has no label
    captured = capsys.readouterr()
    lines = captured.out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[-1] == ""  # one line per input line
    assert lines[0].split("\t")[0] == "zebra" and lines[2].split("\t")[0] == "none"
    assert float(lines[0].split("\t")[1]) == pytest.approx(labels[0][1], abs=1e-4)
    assert "line 2" in captured.err and "empty" in captured.err


def test_predict_reads_a_csv_and_writes_one(trained, tmp_path, capsys):
    run, _ = trained
    rows = _csv(tmp_path / "new.csv", 20, seed=3)
    assert main(["predict", str(run), "--csv", str(rows)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 20 and all(line.split("\t")[0] in ("zebra", "none") for line in out)
    target = tmp_path / "labelled.csv"
    assert main(["predict", str(run), "--csv", str(rows), "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    written = list(csv.DictReader(target.open(encoding="utf-8")))
    assert list(written[0]) == ["id", "text", "label", "prediction", "probability_none",
                                "probability_zebra"]
    assert [r["prediction"] for r in written] == [line.split("\t")[0] for line in out]
    agree = sum(r["prediction"] == r["label"] for r in written)
    assert agree >= 18


def test_a_killed_then_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """Killed after step 6 (two steps after a checkpoint), resumed, stopped by SIGTERM after
    step 11, resumed to the end: the weights, metrics lines and summary of one run."""
    volatile = ("elapsed", "examples_per_second", "train_seconds", "out")

    class Killed(Exception):
        pass

    def outcome(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        kept = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in lines]
        summary = json.loads((out / "summary.json").read_text())
        return (load_checkpoint(out / "checkpoints" / "last.safetensors").model_state, kept,
                {k: v for k, v in summary.items() if k not in volatile})

    settings = {**TINY, "csv": str(_csv(tmp_path / "r.csv", 100)), "steps": 16,
                "checkpoint_every": 4, "eval_every": 8, "log_every": 3, "dropout": 0.2}
    run_classifier({**settings, "out": str(tmp_path / "ref")})
    original = trainer_mod.Trainer._after_step

    stops = {6: "kill", 11: "term"}  # once each; 80 rows are 5 batches: both mid-epoch

    def interrupting(self, bar):
        original(self, bar)
        how = stops.pop(self.p.step, None)
        if how == "kill":
            raise Killed  # the resumed run repeats steps 5 and 6 from step 4's checkpoint
        if how == "term":
            self.stop_signal = signal.SIGTERM  # a polite stop: a checkpoint at step 11

    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", interrupting)
    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        run_classifier({**settings, "out": str(out)})
    assert run_classifier({"resume": str(out)})["status"] == "interrupted"
    monkeypatch.undo()
    assert run_classifier({"resume": str(out)})["status"] == "completed"
    (want, *want_logs), (got, *got_logs) = outcome(tmp_path / "ref"), outcome(out)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert want_logs == got_logs


def test_held_out_files_and_balanced_class_weights(tmp_path):
    """--val/--test files (TSV here) are the held-out rows; balanced weights keep the best
    macro-F1."""
    def tsv(name, n, seed):
        rows = list(csv.reader(_csv(tmp_path / f"{name}.csv", n, seed).open()))
        path = tmp_path / f"{name}.tsv"
        path.write_text("".join("\t".join(r) + "\n" for r in rows))
        return str(path)

    summary = run_classifier({**TINY, "csv": tsv("train", 60, 0), "val": tsv("val", 12, 1),
                              "test": tsv("test", 8, 2), "class_weights": "balanced",
                              "steps": 2, "out": str(tmp_path / "run")})
    assert summary["split"] == "files" and summary["train_examples"] == 60
    assert (summary["val_examples"], summary["test_examples"]) == (12, 8)
    assert summary["val_f1_error"] == pytest.approx(1 - summary["val_macro_f1"])
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert "val_f1_error" in best.metadata


def test_pretrained_word_vectors_start_the_embedding_and_can_stay_frozen(tmp_path):
    vectors = tmp_path / "v.txt"
    vectors.write_text("5 4\nzebra 1 2 3 4\nCat 0 1 0 1\ncat 5 5 5 5\nDOG 0 0 1 1\n"
                       "unrelated 9 9 9 9\n")
    out = tmp_path / "run"
    summary = run_classifier({**TINY, "csv": str(_csv(tmp_path / "r.csv", 60)), "steps": 3,
                              "tokenizer": "word", "embeddings": str(vectors),
                              "freeze_embeddings": True, "out": str(out)})
    assert summary["embeddings_coverage"] > 0
    p = rnnkit.load(out)
    assert p.model.config["embed"] == 4 and p.model.config["freeze_embedding"]
    weight = p.model.input.weight
    assert weight[p.tokenizer.stoi[" zebra"]].tolist() == [1, 2, 3, 4]  # frozen: as read
    assert weight[p.tokenizer.stoi[" cat"]].tolist() == [5, 5, 5, 5]  # the exact word first
    assert weight[p.tokenizer.stoi[" dog"]].tolist() == [0, 0, 1, 1]  # else the same but case
    with pytest.raises(UserError, match="--tokenizer word"):
        run_classifier({**TINY, "csv": str(tmp_path / "r.csv"), "steps": 1,
                        "embeddings": str(vectors), "out": str(tmp_path / "bpe")})


# ---- mistakes -----------------------------------------------------------------------------

def _fails(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err
    return err[0]


def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys):
    never = tmp_path / "never"
    out = ["--out", str(never), "--steps", "2", "--no-progress"]

    def train(path, *more):
        return ["train", "classifier", "--csv", str(path), *out, *more]

    bad = tmp_path / "bad.csv"
    _fails(capsys, train(tmp_path / "missing.csv"), "no such file")
    bad.write_text("")
    _fails(capsys, train(bad), "is empty")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    _fails(capsys, train(bad), "binary")
    bad.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    _fails(capsys, train(bad), "--encoding latin-1")
    bad.write_text("review,stars\ngood,5\nbad,1\n")
    msg = _fails(capsys, train(bad), "no column 'text'")
    assert "'review', 'stars'" in msg and "--text-column" in msg
    bad.write_text("text,label\ngood,pos\nbad,\nok,neg\n")
    _fails(capsys, train(bad), "line 3 has an empty label")
    bad.write_text("text,label\ngood,pos\n ,neg\n")
    _fails(capsys, train(bad), "line 3 has an empty text")
    bad.write_text("text,label\n" + "good,pos\n" * 20)
    _fails(capsys, train(bad), "at least two classes")
    bad.write_text("text,label\ngood,pos\nbad\n")
    _fails(capsys, train(bad), "line 3 has 1 field")
    _fails(capsys, ["train", "classifier", "--dataset", "nope", *out], "sentiment")
    rows = _csv(tmp_path / "ok.csv", 40)
    held = tmp_path / "val.csv"
    held.write_text("text,label\nzebra,zebra\nhorse,horse\n")
    _fails(capsys, train(rows, "--val", str(held)), "'horse'")
    _fails(capsys, train(rows, "--readout", "first"), "invalid choice")
    assert not never.exists()  # nothing written for a refused run


def test_predict_refuses_what_it_cannot_read(tmp_path, capsys, trained):
    run, _ = trained
    _fails(capsys, ["predict", str(tmp_path)], "not an rnnkit run directory")
    bad = tmp_path / "x.csv"
    bad.write_text("body\nhello\n")
    _fails(capsys, ["predict", str(run), "--csv", str(bad)], "no column 'text'")
    _fails(capsys, ["sample", str(run)], "rnnkit predict")


@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--eval-examples", "-1"], "--eval-examples must be a whole number"),
    (["--weight-decay", "-1"], "--weight-decay must be"),
    (["--clip", "-1"], "--clip must be"),  # a negative norm would flip every gradient
    (["--warmup", "-5"], "--warmup must be"),
    (["--patience", "-2"], "--patience must be"),
    (["--momentum", "2"], "--momentum must be"),
])
def test_bad_training_numbers_are_one_line_and_exit_2(tmp_path, capsys, flags, words):
    rows = _csv(tmp_path / "ok.csv", 40)
    never = tmp_path / "never"
    _fails(capsys, ["train", "classifier", "--csv", str(rows), "--out", str(never), "--steps",
                    "2", "--no-progress", *flags], words)
    assert not never.exists()


def test_classes_too_small_to_hold_out_say_so(tmp_path, capsys):
    """Every label once (the text and label columns swapped, say): the error names the
    classes' sizes, not a count of rows that is plenty."""
    bad = tmp_path / "swapped.csv"
    bad.write_text("text,label\n" + "".join(f"row {i},label {i}\n" for i in range(60)))
    msg = _fails(capsys, ["train", "classifier", "--csv", str(bad), "--out",
                          str(tmp_path / "never"), "--steps", "2", "--no-progress"],
                 "60 classes")
    assert "--label-column" in msg


def test_predict_output_to_a_directory_is_one_line_and_exit_2(trained, tmp_path, capsys):
    run, _ = trained
    rows = _csv(tmp_path / "new.csv", 5, seed=3)
    _fails(capsys, ["predict", str(run), "--csv", str(rows), "--output", str(tmp_path)],
           "is a directory; give the CSV file to write")
