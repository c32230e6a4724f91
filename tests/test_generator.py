"""Generation from one input: the conditioned language model (the label's initial state reaches
the output, its gradient reaches the label), `rnnkit train generator` on a corpus where each label
has its own alphabet, own- against wrong-label bits per character, `rnnkit sample --label`, the
Python API, errors and resume."""

import csv
import json
import random
import re
import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.labelled import load_labelled
from rnnkit.data.tokenizers import build_tokenizer
from rnnkit.generation import Generator
from rnnkit.models.conditioned import ConditionedLM
from rnnkit.models.generate import generate
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.scoring import total_nats
from rnnkit.train import trainer as trainer_mod
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.generator import run_generator
from rnnkit.train.rundir import RunDir

TINY = {"hidden": 32, "embed": 16, "batch_size": 16, "warmup": 5, "lr": 0.02,
        "progress": False, "threads": 1}
ALPHABETS = {"A": "abcd", "B": "wxyz"}


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    """Texts of short words, each label with its own letters (A: abcd, B: wxyz)."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = "AB"[i % 2]
            words = ["".join(rng.choice(ALPHABETS[label]) for _ in range(rng.randint(2, 5)))
                     for _ in range(rng.randint(2, 4))]
            w.writerow([" ".join(words), label])
    return path


# ---- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "mingru"])
@pytest.mark.parametrize("every_step", [False, True])
def test_the_labels_initial_state_reaches_the_output(cell, every_step):
    """Untrained, fixed seed: each label gives its own next-token distributions; without
    every_step the model is exactly the language model run from the label's state."""
    torch.manual_seed(0)
    m = ConditionedLM(12, num_labels=3, cell=cell, embed=8, hidden=16, layers=2,
                      every_step=every_step).eval()
    x = torch.randint(12, (6, 1)).expand(6, 3)  # the same text under labels 0, 1, 2
    labels = torch.tensor([0, 1, 2])
    logits, _ = m(x, labels=labels)
    p = logits.softmax(-1)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (p[0, a] - p[0, b]).abs().max() > 1e-4  # the very first prediction differs
    state = m.initial_state(labels)
    for s in (state if isinstance(state, tuple) else (state,)):
        assert s.shape == (2, 3, 16)  # every layer starts from the label
    if not every_step:
        reference, _ = LanguageModel.forward(m, x, state)
        assert torch.equal(logits, reference)
    else:  # the label also enters every step: from one shared state, outputs still differ
        shared = tuple(s[:, :1].expand_as(s).contiguous() for s in state) \
            if isinstance(state, tuple) else state[:, :1].expand_as(state).contiguous()
        later, _ = m(x, shared, labels)
        assert (later[0, 0] - later[0, 1]).abs().max() > 1e-4


def test_the_initial_state_is_the_documented_map_of_the_label_embedding():
    torch.manual_seed(1)
    m = ConditionedLM(10, num_labels=4, cell="lstm", hidden=8, layers=2)
    v = m.condition.weight[2]
    z = (m.to_state.weight @ v + m.to_state.bias).view(2, 2, 8)  # (h or c, layer, H)
    h, c = m.initial_state(torch.tensor([2]))
    torch.testing.assert_close(h[:, 0], torch.tanh(z[0]))
    torch.testing.assert_close(c[:, 0], z[1])


@pytest.mark.parametrize("every_step", [False, True])
def test_the_gradient_reaches_the_labels_that_were_used(every_step):
    """d loss / d label embedding: nonzero for the labels in the batch, zero for the others,
    and the same as a finite difference."""
    torch.manual_seed(2)
    m = ConditionedLM(9, num_labels=4, cell="gru", hidden=8, every_step=every_step).double()
    x, t = torch.randint(9, (5, 3)), torch.randint(9, (5, 3))
    labels = torch.tensor([0, 2, 2])

    def loss():
        logits, _ = m(x, labels=labels)
        return F.cross_entropy(logits.flatten(0, 1), t.flatten())

    loss().backward()
    g = m.condition.weight.grad
    assert g[0].abs().sum() > 0 and g[2].abs().sum() > 0
    assert g[1].abs().sum() == 0 and g[3].abs().sum() == 0
    with torch.no_grad():
        eps, w = 1e-6, m.condition.weight
        w[2, 3] += eps
        up = loss()
        w[2, 3] -= 2 * eps
        down = loss()
        w[2, 3] += eps
    assert float((up - down) / (2 * eps)) == pytest.approx(float(g[2, 3]), rel=1e-5)


def test_a_feature_vector_conditions_the_model_too():
    torch.manual_seed(3)
    m = ConditionedLM(7, features=5, cell="lstm", hidden=8)
    feats = torch.randn(2, 5, requires_grad=True)
    logits, _ = m(torch.randint(7, (4, 2)), labels=feats)
    assert (logits[0, 0] - logits[0, 1]).abs().max() > 1e-5
    logits.sum().backward()
    assert m.condition.weight.grad.abs().sum() > 0 and feats.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="features must be"):
        m(torch.randint(7, (4, 2)), labels=torch.randn(2, 3))


def test_bound_condition_drives_generate_and_scoring():
    """``given(label)`` is the plain ``model(x, state)`` interface: scoring a text through it
    equals the cross-entropy of one batched forward, and generation is seeded."""
    torch.manual_seed(4)
    m = ConditionedLM(6, num_labels=2, hidden=8).eval()
    ids = [1, 4, 2, 5, 3]
    given = m.given(torch.tensor([1]))
    with torch.no_grad():
        logits, _ = m(torch.tensor([0, *ids[:-1]]).unsqueeze(1), labels=torch.tensor([1]))
    want = float(F.cross_entropy(logits[:, 0], torch.tensor(ids), reduction="sum"))
    assert total_nats(given, ids, start_id=0, chunk=2) == pytest.approx(want, rel=1e-5)
    a = list(generate(given, [0], 20, generator=torch.Generator().manual_seed(5)))
    b = list(generate(given, [0], 20, generator=torch.Generator().manual_seed(5)))
    assert a == b and len(a) == 20


# ---- training on labels with their own alphabets --------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    summary = run_generator({**TINY, "csv": str(_csv(d / "rows.csv")), "steps": 150,
                             "eval_every": 50, "out": str(d / "run")})
    return d / "run", summary


def test_each_label_writes_with_its_own_letters(trained):
    run, summary = trained
    g = rnnkit.load(run)
    assert isinstance(g, Generator) and g.labels == ["A", "B"]
    for label, letters in ALPHABETS.items():
        texts = g.samples(label, 8, length=40, temperature=0.5, seed=0)
        used = set("".join(texts)) - {" "}
        assert used and used <= set(letters), (label, texts)
    for label in ("A", "B"):  # the samples the run wrote are in samples.txt and the summary
        assert f"--- {label} ---" in (run / "samples.txt").read_text()
        assert set(summary[f"sample_label_{label}"]) <= set(ALPHABETS[label] + " ")


def test_held_out_texts_are_likelier_under_their_own_label(trained):
    run, summary = trained
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["task"] == "generator" and on_disk["status"] == "completed"
    assert on_disk["test_own_label_bpc"] < on_disk["test_wrong_label_bpc"] - 2
    assert on_disk["test_label_accuracy"] == 1.0
    assert on_disk["test_bpc"] == pytest.approx(on_disk["test_own_label_bpc"])
    # the batched, padded evaluation is each text scored alone (Generator.score: total nats
    # over characters, each text's end one more), under its own label and under the other
    g, split = rnnkit.load(run), load_labelled(csv_path=run.parent / "rows.csv", seed=0)
    for key, which in (("own_label_bpc", lambda y: y), ("wrong_label_bpc", "AB".replace)):
        nats = chars = 0.0
        for text, label in split.test:
            other = which(label) if key.startswith("own") else which(label, "")
            s = g.score(text, other)
            nats, chars = nats + s["bpc"] * s["chars"], chars + s["chars"]
            assert s["chars"] == len(text) + 1
        assert on_disk[f"test_{key}"] == pytest.approx(nats / chars, rel=1e-4)
    for part in ("val", "test"):  # the overall bpc lies between the labels' own
        per_label = [on_disk[f"{part}_bpc_label_{k}"] for k in "AB"]
        assert min(per_label) <= on_disk[f"{part}_bpc"] <= max(per_label)
    for name in ("config.json", "metrics.jsonl", "samples.txt", "checkpoints/best.safetensors",
                 "checkpoints/tokenizer.json"):
        assert (run / name).is_file(), name


def test_sample_cli_writes_label_texts_as_the_api_does(trained, capsys):
    run, _ = trained
    assert main(["sample", str(run), "--label", "B", "--count", "3", "--seed", "7",
                 "--temperature", "0.5", "--length", "40"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[-1] == ""
    want = rnnkit.load(run).samples("B", 3, length=40, temperature=0.5, seed=7)
    assert lines[:3] == want
    assert main(["sample", str(run), "--label", "A", "--prime", "ab", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ab") and out == rnnkit.load(run).generate(
        label="A", prime="ab", length=500, seed=1) + "\n"


def test_sample_errors_are_one_line_and_exit_2(trained, tmp_path, capsys):
    run, _ = trained
    assert main(["sample", str(run), "--label", "C"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown label 'C'" in err[0] and "A, B" in err[0]
    assert main(["sample", str(run)]) == 2
    assert "give --label" in capsys.readouterr().err
    assert main(["sample", str(run), "--label", "A", "--out", str(tmp_path / "x.mid")]) == 2
    assert "drop --out" in capsys.readouterr().err and not (tmp_path / "x.mid").exists()
    assert main(["evaluate", str(run), "--text", str(run.parent / "rows.csv")]) == 2
    assert "rnnkit sample --label" in capsys.readouterr().err
    # a plain language model's run: --label is an error that says so; without it, as before
    lm_run = tmp_path / "lm"
    tok = build_tokenizer("char", "hello\n")
    save_checkpoint(lm_run / "checkpoints" / "best.safetensors",
                    LanguageModel(tok.vocab_size, hidden=8), None, {"step": 0})
    tok.save(lm_run / "checkpoints")
    (lm_run / "config.json").write_text(json.dumps({"task": "lm", "tokenizer": "char"}))
    assert main(["sample", str(lm_run), "--label", "A"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--label" in err[0] and "rnnkit train generator" in err[0]
    assert main(["sample", str(lm_run), "--length", "10", "--seed", "3", "--prime", "he"]) == 0
    assert capsys.readouterr().out == rnnkit.load(lm_run).generate("he", 10, seed=3) + "\n"


def test_a_damaged_or_foreign_checkpoint_is_one_line(trained, tmp_path, capsys):
    import shutil

    run, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    best = copy / "checkpoints" / "best.safetensors"
    ck = load_checkpoint(best)
    model = ConditionedLM(**ck.metadata["model_config"])
    model.load_state_dict(ck.model_state)
    with torch.no_grad():
        model.condition.weight[0, 0] = float("nan")
    save_checkpoint(best, model, None, {"step": 1})
    assert main(["sample", str(copy), "--label", "A"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0] and "condition.weight" in err[0]
    wider = ConditionedLM(**{**ck.metadata["model_config"], "hidden": 40})
    save_checkpoint(best, wider, None, {"step": 1})
    assert main(["sample", str(copy), "--label", "A"]) == 2
    assert "not this run's model" in capsys.readouterr().err


def test_train_generator_cli_json_and_bad_input(tmp_path, capsys):
    rows = _csv(tmp_path / "rows.csv", 60)
    argv = ["train", "generator", "--csv", str(rows), "--hidden", "8", "--embed", "4",
            "--steps", "3", "--no-progress", "--samples-per-label", "1", "--json"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["task"] == "generator" and s["labels"] == ["A", "B"] and "test_bpc_label_A" in s
    assert main([*argv, "--label-column", "mood", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'mood'" in err[0]
    assert not (tmp_path / "bad").exists()  # nothing written for a run that could not start


def test_a_killed_then_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """Killed after step 6 (two steps after a checkpoint), resumed, stopped by SIGTERM after
    step 11, resumed to the end: the weights, metrics lines and summary of one run."""
    volatile = ("elapsed", "tokens_per_second", "train_seconds", "out", "samples")

    class Killed(Exception):
        pass

    def outcome(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        kept = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in lines]
        summary = json.loads((out / "summary.json").read_text())
        return (load_checkpoint(out / "checkpoints" / "last.safetensors").model_state, kept,
                {k: v for k, v in summary.items() if k not in volatile},
                (out / "samples.txt").read_text())

    settings = {**TINY, "csv": str(_csv(tmp_path / "r.csv", 100)), "steps": 16,
                "checkpoint_every": 4, "eval_every": 8, "log_every": 3, "dropout": 0.2,
                "samples_per_label": 2}
    run_generator({**settings, "out": str(tmp_path / "ref")})
    original = trainer_mod.Trainer._after_step
    stops = {6: "kill", 11: "term"}  # once each; 80 rows are 5 batches: both mid-epoch

    def interrupting(self, bar):
        original(self, bar)
        how = stops.pop(self.p.step, None)
        if how == "kill":
            raise Killed
        if how == "term":
            self.stop_signal = signal.SIGTERM

    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", interrupting)
    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        run_generator({**settings, "out": str(out)})
    assert run_generator({"resume": str(out)})["status"] == "interrupted"
    monkeypatch.undo()
    assert run_generator({"resume": str(out)})["status"] == "completed"
    (want, *want_rest), (got, *got_rest) = outcome(tmp_path / "ref"), outcome(out)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert want_rest == got_rest


def test_music_in_a_chosen_genre_is_written_as_midi(tmp_path, capsys):
    """--dataset music-genre: each piece's melody as note-event words; a sample for a genre
    written with --out is a MIDI file whose notes are the sampled events."""
    from rnnkit.data import music
    from rnnkit.data.tokenizers import NoteTokenizer

    out = tmp_path / "tunes"
    assert main(["train", "generator", "--dataset", "music-genre", "--max-pieces", "3",
                 "--hidden", "16", "--embed", "8", "--steps", "20", "--no-progress",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["labels"] == list(music.GENRES) and summary["tokenizer"] == "notes"
    gen = rnnkit.load(out)
    assert isinstance(gen.tokenizer, NoteTokenizer)
    melody = music.events_text(load_labelled_music_piece())
    assert gen.tokenizer.decode(gen.tokenizer.encode(melody)) == melody  # training's words

    tune = tmp_path / "tune.mid"
    for seed in range(20):  # a model this small may end a piece at once: the next seed
        status = main(["sample", str(out), "--label", "folk", "--out", str(tune), "--seed",
                       str(seed), "--length", "30"])
        if status == 0:
            break
        assert "ended before its first note" in capsys.readouterr().err
    assert status == 0 and capsys.readouterr().out.strip() == str(tune)
    assert main(["sample", str(out), "--label", "folk", "--seed", str(seed), "--length",
                 "30"]) == 0
    words = " ".join(w for w in capsys.readouterr().out.split() if w != "<unk>")
    words = re.sub(r"^(r:\S+ )+|( r:\S+)+$", "", words).split()  # no silence at either end
    assert words and music.note_events(music.read_score(tune)) == [
        music.parse_event(w) for w in words]

    for argv, words in ((["--tokenizer", "word"], "drop --tokenizer"),
                        (["--max-pieces", "0"], "--max-pieces")):
        assert main(["train", "generator", "--dataset", "music-genre", *argv, "--out",
                     str(tmp_path / "bad")]) == 2
        assert words in capsys.readouterr().err
    assert main(["train", "generator", "--dataset", "sentiment", "--max-pieces", "3",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "goes with --dataset music-genre" in capsys.readouterr().err


def load_labelled_music_piece():
    from rnnkit.data.labelled import load_music_genre

    d = load_music_genre(3)
    return d.notes[d.train[0][0]]


@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--eval-examples", "-1"], "--eval-examples must be a whole number"),
    (["--clip", "-1"], "--clip must be"),
])
def test_bad_training_numbers_are_one_line_and_exit_2(tmp_path, capsys, flags, words):
    rows = _csv(tmp_path / "g.csv", 40)
    never = tmp_path / "never"
    assert main(["train", "generator", "--csv", str(rows), "--out", str(never), "--steps", "2",
                 "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err
    assert not never.exists()


def test_the_summary_and_report_hold_a_character_ngram_baseline(trained, tmp_path):
    """Every task prints a classical baseline beside the network: the generator a character
    5-gram's bits per character on the same held-out texts, which a trained network beats."""
    from rnnkit.cli.train_generator import report

    run, summary = trained
    for split in ("val", "test"):
        b = summary[f"{split}_ngram_bpc"]
        assert 0 < b < 8 and summary[f"{split}_bpc"] < b
    assert json.loads((run / "summary.json").read_text())["val_ngram_bpc"] == \
        summary["val_ngram_bpc"]
    text = report(summary)
    assert "5-gram baseline, no label: " in text and "5-gram baseline " in text.splitlines()[2]


def _generator_flags(capsys) -> set[str]:
    with pytest.raises(SystemExit):
        main(["train", "generator", "--help"])
    return set(re.findall(r"--[a-z][a-z-]*", capsys.readouterr().out))


def test_a_run_above_its_baseline_ends_with_a_note_of_what_to_try(tmp_path, capsys):
    """Three steps of a tiny model cannot beat counting 5-grams: as `train lm` does, the closing
    lines say so (summary.json keeps them, --json puts them on stderr), and the hint is a flag
    of `train generator`: the --steps that ended the run while it was still improving."""
    rows = _csv(tmp_path / "rows.csv", 60)
    argv = ["train", "generator", "--csv", str(rows), "--hidden", "8", "--embed", "4",
            "--steps", "3", "--no-progress", "--samples-per-label", "0", "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    notes = [x for x in capsys.readouterr().out.splitlines() if x.startswith("note:")]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["val_bpc"] > summary["val_ngram_bpc"] and summary["train_chars"] > 0
    (note,) = summary["warnings"]
    assert notes == [f"note:       {note}"]
    assert f"above the 5-gram baseline's {summary['val_ngram_bpc']:.3f}" in note
    assert "validation texts" in note and "a larger --steps than 3" in note
    assert set(re.findall(r"--[a-z][a-z-]*", note)) <= _generator_flags(capsys)
    assert main([*argv, "--json", "--out", str(tmp_path / "json")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] and "rnnkit: warning: validation bpc" in err


def test_closing_warnings_read_the_generators_summary(trained, capsys):
    """The LM's closing warnings on the generator's summary, metrics and settings (no
    ``ngram_order``: its baseline is a fixed 5-gram): none for the trained run, which beats
    its baseline; above it, or memorising, a note whose flags the generator has."""
    from rnnkit.train.generator import NGRAM_ORDER
    from rnnkit.train.lm import closing_warnings

    run, summary = trained
    s, metrics = json.loads((run / "config.json").read_text()), RunDir(run).metrics()
    assert "ngram_order" not in s and "warnings" not in summary
    assert closing_warnings(summary, metrics, s, order=NGRAM_ORDER, text="texts") == []
    worse = {**summary, "val_bpc": summary["val_ngram_bpc"] + 0.5}
    rising = [{"step": 50 * i, "val_bpc": 3.0 - 0.1 * i, "val_loss": 2.0 - 0.07 * i}
              for i in range(4)]
    (late,) = closing_warnings(worse, rising, s, order=NGRAM_ORDER, text="texts")
    assert "above the 5-gram baseline's" in late and "a larger --steps than 150" in late
    # a memorising curve: validation turns up while training falls below it
    curve = [{"step": 100 * i, "val_bpc": b, "val_loss": b * 0.69}
             for i, b in enumerate([3.0, 2.5, 2.45, 2.6, 2.7])] + [{"loss": 1.2}]
    memorised, baseline = closing_warnings({**worse, "epochs": 40.0}, curve, s,
                                           order=NGRAM_ORDER, text="texts")
    assert f"saw its {summary['train_chars']:,} training characters 40 times" in memorised
    assert "memorised the texts" in memorised and "or more texts" in memorised
    assert "more texts" in baseline
    flags = _generator_flags(capsys)
    for note in (late, memorised, baseline):
        assert set(re.findall(r"--[a-z][a-z-]*", note)) <= flags, note
    # a run on the clock: a longer --max-time
    (clock,) = closing_warnings(worse, rising, {**s, "steps": None, "max_time": 240.0},
                                order=NGRAM_ORDER, text="texts")
    assert "a longer --max-time" in clock


# ---- defaults sized from the texts and the budget -------------------------------------------

def test_batch_rows_hold_about_the_language_models_tokens():
    from rnnkit.train.generator import BATCH_ROWS, BATCH_TOKENS, Encoded, batch_rows

    def texts(length, n=10):
        return Encoded([[0] * (length + 1)] * n, torch.zeros(n), [length] * n)
    for length in (3, 20, 71, 100, 224, 400, 5000):
        rows = batch_rows(texts(length))
        assert BATCH_ROWS[0] <= rows <= BATCH_ROWS[1]
        if BATCH_ROWS[0] < rows < BATCH_ROWS[1]:
            assert abs(rows * length - BATCH_TOKENS) <= length / 2 + 1
    assert batch_rows(texts(3)) == 64 and batch_rows(texts(5000)) == 8
    assert batch_rows(texts(100), processes=3) == 39  # 41 to a multiple of the processes


def test_sizes_come_from_the_texts_and_a_short_budget_narrows_them(tmp_path, capsys,
                                                                   monkeypatch):
    """Left to the defaults, the width, embedding, dropout, learning rate and batch follow the
    training texts (config.json records them); with time the only budget the steps are timed
    and a narrower model chosen where the budget buys few; a given width is never timed."""
    from rnnkit.train import generator as gen_mod
    from rnnkit.train.sizing import SHORT_BUDGET_LR, size_for

    timed = []

    def seconds(s, vocab, labels, train, width, device):
        timed.append(width)
        return 10.0 * (width / 256) ** 2  # a slow machine: a 1 s budget buys few steps

    monkeypatch.setattr(gen_mod, "seconds_per_step", seconds)
    lrs = []

    class Spy(gen_mod.Trainer):  # the rate the Trainer is given, not only the one written
        def __init__(self, model, task, settings, *args, **kw):
            lrs.append(settings.lr)
            super().__init__(model, task, settings, *args, **kw)

    monkeypatch.setattr(gen_mod, "Trainer", Spy)
    rows = _csv(tmp_path / "g.csv", 60)
    base = {"csv": str(rows), "progress": False, "threads": 1, "samples_per_label": 0,
            "eval_every": 10**6}
    run_generator({**base, "max_time": 1.0, "out": str(tmp_path / "a")})
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    chars = cfg["sized_from_text"]["train_chars"]
    want = size_for(chars)
    assert 0 < chars < 2000 and cfg["embed"] == want["embed"] and cfg["lr"] == SHORT_BUDGET_LR
    assert lrs == [SHORT_BUDGET_LR]
    assert cfg["dropout"] == want["dropout"] and timed == [256, 192, 128]
    assert cfg["hidden"] == cfg["model"]["hidden"] == 128
    assert cfg["batch_size"] == 64  # short texts: the most a batch
    assert set(cfg["sized_from_text"]["settings"]) == {"hidden", "embed", "dropout", "lr",
                                                       "batch_size"}
    err = capsys.readouterr().err
    assert "hidden 128 rather than 256" in err and "batch size 64" in err
    timed.clear()
    run_generator({**base, "hidden": 24, "embed": 8, "max_time": 0.5, "batch_size": 16,
                   "out": str(tmp_path / "b")})
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert timed == [] and cfg["model"]["hidden"] == 24 and cfg["batch_size"] == 16
    assert set(cfg["sized_from_text"]["settings"]) == {"dropout", "lr"}


def test_seconds_per_step_times_the_generators_model():
    from rnnkit.train.generator import DEFAULTS, Encoded, seconds_per_step

    s = {**DEFAULTS, "embed": 8, "dropout": 0.0, "batch_size": 4}
    train = Encoded([[0, 1, 2, 0]] * 6, torch.zeros(6, dtype=torch.long), [3] * 6)
    assert 0 < seconds_per_step(s, 5, 2, train, 16, torch.device("cpu"), steps=2) < 5
