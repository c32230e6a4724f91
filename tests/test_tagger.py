"""The sequence tagger: the model on padded batches, the python-tokens labels and split, CoNLL
files and their errors, `rnnkit train tagger`, resume, `rnnkit predict` and `rnnkit.load`."""

import csv
import io
import itertools
import json
import keyword
import random
import signal
import tokenize
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.tagged import (
    PYTHON_TAGS,
    chunk,
    load_tagged,
    python_files,
    python_token_tags,
    python_tokens,
    read_conll,
    split_of,
    tags_and_cuts,
)
from rnnkit.errors import UserError
from rnnkit.models.tagger import SequenceTagger
from rnnkit.tagging import Tagger
from rnnkit.train import trainer as trainer_mod
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.tagger import run_tagger

TINY = {"hidden": 16, "embed": 8, "batch_size": 16, "warmup": 5, "lr": 0.02,
        "progress": False, "dropout": 0.0}
WORDS = "the a cat dog sat ran on under mat tree big small red blue".split()
NAMES = "Ann Bob Cleo Dan".split()


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences whose tags need both directions: a name is PER; in a sentence that ends in
    "!" every other word is LOUD (only the end tells); else a word right after "not" is NEG,
    the rest O."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS + NAMES + ["not"]) for _ in range(rng.randint(3, 8))]
        loud = rng.random() < 0.5
        words += ["!"] if loud else []
        tags = ["PER" if w in NAMES else "LOUD" if loud else
                "NEG" if i and words[i - 1] == "not" else "O" for i, w in enumerate(words)]
        out.append((words, tags))
    return out


def _conll(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A CoNLL file: -DOCSTART-, then 'TOKEN POS TAG' lines (the tag is the last field)."""
    lines = ["-DOCSTART- -X- O", ""]
    for words, tags in _sentences(n, seed):
        lines += [f"{w} NN {t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ---- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("backend", ["native", "bptt"])
def test_a_padded_batch_tags_what_each_item_alone_tags(cell, bidirectional, backend):
    torch.manual_seed(0)
    m = SequenceTagger(20, 4, cell=cell, embed=6, hidden=8, layers=2, backend=backend,
                       bidirectional=bidirectional).double().eval()
    lengths = torch.tensor([5, 1, 3, 4])
    x = torch.randint(1, 20, (5, 4))
    x[lengths[None] <= torch.arange(5)[:, None]] = 0  # padding, as a batch holds it
    batch = m(x, lengths)
    assert batch.shape == (5, 4, 4)
    for b, n in enumerate(lengths.tolist()):
        alone = m(x[:n, b:b + 1], lengths[b:b + 1])
        torch.testing.assert_close(batch[:n, b:b + 1], alone, rtol=0, atol=1e-12)
        # what follows the item (other padding) changes nothing either
        longer = torch.cat([x[:n, b:b + 1], torch.randint(20, (3, 1))])
        torch.testing.assert_close(m(longer, lengths[b:b + 1])[:n], alone, rtol=0, atol=1e-12)


def test_the_model_reads_features_and_refuses_bad_settings():
    m = SequenceTagger(None, 3, input_features=5, hidden=8)
    assert m(torch.randn(7, 2, 5), torch.tensor([7, 4])).shape == (7, 2, 3)
    assert SequenceTagger(**m.config).config == m.config
    with pytest.raises(UserError, match="at least 2 tags"):
        SequenceTagger(10, 1)
    with pytest.raises(UserError, match="unknown cell"):
        SequenceTagger(10, 3, cell="nope")
    with pytest.raises(UserError, match="either vocab_size"):
        SequenceTagger(10, 3, input_features=4)


# ---- python-tokens ------------------------------------------------------------------------

CODE = {"whitespace": "_", "name": "n", "keyword": "k", "operator": "o", "number": "9",
        "string": "s", "comment": "c"}


def test_python_token_classes_of_a_hand_checked_snippet():
    src = ('def f(match, _x=0x1F):  # soft\n'
           '    """Doc."""\n'
           '    return not match or f"{_x!r}" + \\\n'
           "        1.5e3\n")
    want = ("kkk_nonnnnno_nno9999oo__cccccc_"  # match: a soft keyword, a name here
            "____ssssssssss_"
            "____kkkkkk_kkk_nnnnn_kk_sssssssss_o___"  # the f-string whole; "\\" between tokens
            "________99999_")
    got = "".join(CODE[t] for t in python_token_tags(src))
    assert got == want
    assert set(python_token_tags(src)) == set(PYTHON_TAGS)  # every class appears


def test_python_token_tags_agree_with_tokenize_on_real_files():
    """Every token's characters carry its class; the rest is whitespace."""
    kinds = {tokenize.NUMBER: "number", tokenize.STRING: "string", tokenize.OP: "operator",
             tokenize.COMMENT: "comment", tokenize.NAME: "name"}
    seen = set()
    for _, text in itertools.islice(python_files(), 3):
        tags = python_token_tags(text)
        covered = [False] * len(text)
        starts = [0]
        for line in io.StringIO(text, newline="").readlines():
            starts.append(starts[-1] + len(line))
        depth, opened = 0, 0  # Python 3.12+: an f-string in pieces, all of it a string
        for tok in tokenize.generate_tokens(io.StringIO(text, newline="").readline):
            a = starts[tok.start[0] - 1] + tok.start[1]
            b = starts[tok.end[0] - 1] + tok.end[1]
            name = tokenize.tok_name[tok.type]
            if name in ("FSTRING_START", "TSTRING_START"):
                depth, opened = depth + 1, a if depth == 0 else opened
            elif name in ("FSTRING_END", "TSTRING_END"):
                depth -= 1
                if depth == 0:
                    assert set(tags[opened:b]) == {"string"}
                    covered[opened:b] = [True] * (b - opened)
            kind = kinds.get(tok.type)
            if kind is None or depth:
                continue
            if kind == "name" and tok.string in keyword.kwlist:
                kind = "keyword"
            assert text[a:b] == tok.string and set(tags[a:b]) == {kind}
            covered[a:b] = [True] * (b - a)
        assert all(t == "whitespace" for t, c in zip(tags, covered) if not c)
        seen |= set(tags)
    assert seen == set(PYTHON_TAGS)


def test_python_tokens_are_cut_by_file_and_at_clean_line_ends():
    data = python_tokens(max_chars=30_000, seq_len=300)
    assert data.tags == list(PYTHON_TAGS) and data.split == "fixed" and data.kind == "char"
    for part in (data.train, data.val, data.test):
        assert part and all(0 < len(tokens) <= 300 and len(tokens) == len(tags)
                            for tokens, tags in part)
    for _, text in itertools.islice(python_files(), 5):  # each file's pieces
        tags, cuts = tags_and_cuts(text)
        pieces = chunk(text, tags, 300, cuts)
        assert "".join("".join(p) for p, _ in pieces) == text
        assert [t for _, ts in pieces for t in ts] == tags
        start = 0
        for piece, _ in pieces:
            end = start + len(piece)
            # at a clean line end (no string or bracket open), unless no such end fits
            assert end in cuts or not any(start < c <= start + 300 for c in cuts)
            assert end in cuts or text[end - 1] == "\n" or len(piece) == 300
            start = end
        assert tags[cuts[0] - 1] == "whitespace" and text[cuts[0] - 1] == "\n"
    assert python_tokens(max_chars=30_000, seq_len=300).train == data.train  # reproducible
    assert {split_of(f"x{i}.py") for i in range(60)} == {"train", "val", "test"}


def test_a_file_tokenize_cannot_read_is_refused():
    for bad in ('s = "open\n', "def f(:\n  )\n)\n"):
        with pytest.raises((tokenize.TokenError, SyntaxError)):
            tags_and_cuts(bad)


# ---- CoNLL files --------------------------------------------------------------------------

def test_reading_conll_round_trips(tmp_path):
    sentences = _sentences(30, seed=4)
    got = read_conll(_conll(tmp_path / "a.conll", 30, seed=4))
    assert got == sentences
    tagged = load_tagged(conll=tmp_path / "a.conll", val_fraction=0.2, test_fraction=0.1,
                         seed=3)
    assert (len(tagged.train), len(tagged.val), len(tagged.test)) == (21, 6, 3)
    assert sorted(map(str, tagged.train + tagged.val + tagged.test)) == sorted(
        map(str, sentences))  # a shuffle of whole sentences
    assert tagged.tags == sorted({t for _, ts in sentences for t in ts})
    again = load_tagged(conll=tmp_path / "a.conll", val_fraction=0.2, test_fraction=0.1, seed=3)
    assert again.val == tagged.val  # the seed decides
    files = load_tagged(conll=_conll(tmp_path / "t.conll", 20), seed=3,
                        val_path=_conll(tmp_path / "v.conll", 5, seed=1),
                        test_path=_conll(tmp_path / "s.conll", 4, seed=2))
    assert files.split == "files" and (len(files.train), len(files.val), len(files.test)) == (
        20, 5, 4)  # held-out files: no sentence of --conll is cut away
    pieces = load_tagged(conll=tmp_path / "t.conll", seq_len=2, val_fraction=0,
                         test_fraction=0).train
    assert sorted(map(str, pieces)) == sorted(str((tokens[i:i + 2], tags[i:i + 2]))
                                              for tokens, tags in _sentences(20)
                                              for i in range(0, len(tokens), 2))  # in pieces
    (tmp_path / "tabs.conll").write_text("New\tNNP\tB-LOC\nYork\tNNP\tI-LOC\n\n\nhi\tO\n")
    assert read_conll(tmp_path / "tabs.conll") == [(["New", "York"], ["B-LOC", "I-LOC"]),
                                                    (["hi"], ["O"])]


def _fails(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err
    return err[0]


def test_bad_conll_files_are_one_line_and_exit_2(tmp_path, capsys):
    never = tmp_path / "never"
    out = ["--out", str(never), "--steps", "2", "--no-progress"]

    def train(path, *more):
        return ["train", "tagger", "--conll", str(path), *out, *more]

    bad = tmp_path / "bad.conll"
    _fails(capsys, train(tmp_path / "missing.conll"), "no such file")
    bad.write_text("  \n\n")
    _fails(capsys, train(bad), "is empty")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    _fails(capsys, train(bad), "binary")
    bad.write_bytes("caf\xe9 O\n".encode("latin-1"))
    _fails(capsys, train(bad), "not UTF-8")
    bad.write_text("the DT O\ncat\nsat VBD O\n")
    _fails(capsys, train(bad), "line 2 has no tag")
    bad.write_text("-DOCSTART- O\n\n")
    _fails(capsys, train(bad), "no tagged tokens")
    bad.write_text("the O\ncat O\n\nsat O\n" * 5)
    _fails(capsys, train(bad), "at least two tags")
    good = _conll(tmp_path / "ok.conll", 40)
    held = tmp_path / "val.conll"
    held.write_text("Ann B-PER\n")
    _fails(capsys, train(good, "--val", str(held)), "'B-PER'")
    _fails(capsys, ["train", "tagger", "--dataset", "nope", *out], "python-tokens")
    _fails(capsys, train(good, "--dataset", "python-tokens"), "not both")
    assert not never.exists()  # nothing written for a refused run


# ---- training, predicting -----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("tag")
    summary = run_tagger({**TINY, "conll": str(_conll(d / "train.conll")), "steps": 240,
                          "eval_every": 40, "out": str(d / "run")})
    return d / "run", summary


def test_a_short_run_learns_tags_that_need_both_directions(trained):
    run, summary = trained
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["task"] == "tagger" and on_disk["status"] == "completed"
    for key in ("val_loss", "val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1",
                "tokens_per_second", "train_tokens", "tags", "val_baseline_accuracy"):
        assert key in on_disk, key
    assert on_disk["tags"] == ["LOUD", "NEG", "O", "PER"]
    # a word's own most frequent tag cannot tell LOUD or NEG; reading both ways can
    assert on_disk["test_accuracy"] > 0.97 and on_disk["test_baseline_accuracy"] < 0.75
    assert on_disk["test_macro_f1"] > 0.95
    for name in ("config.json", "metrics.jsonl", "confusion.txt", "confusion.png",
                 "checkpoints/best.safetensors", "checkpoints/tagger-vocab.json"):
        assert (run / name).is_file(), name


def test_load_tags_and_predict_prints_the_same(trained, capsys, monkeypatch, tmp_path):
    run, _ = trained
    t = rnnkit.load(run)
    assert isinstance(t, Tagger)
    texts = ["Ann sat on the mat !", "", "the dog not red", "zebra Bob"]
    tags = t.tag(texts)
    assert tags[:3] == [["PER", "LOUD", "LOUD", "LOUD", "LOUD", "LOUD"], [],
                        ["O", "O", "O", "NEG"]]
    assert len(tags[3]) == 2 and tags[3][1] == "PER"  # an unknown word beside a known name
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(x + "\n" for x in texts)))
    assert main(["predict", str(run)]) == 0
    captured = capsys.readouterr()
    assert captured.out.split("\n") == [" ".join(x) for x in tags] + [""]
    rows = tmp_path / "in.csv"
    rows.write_text("id,text\n1,Ann ran !\n2,the cat\n")
    assert main(["predict", str(run), "--csv", str(rows)]) == 0
    assert capsys.readouterr().out == "PER LOUD LOUD\nO O\n"
    target = tmp_path / "tagged.csv"
    assert main(["predict", str(run), "--csv", str(rows), "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    written = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [(r["id"], r["prediction"]) for r in written] == [("1", "PER LOUD LOUD"),
                                                                ("2", "O O")]
    _fails(capsys, ["sample", str(run)], "rnnkit predict")


def test_a_python_tokens_run_tags_each_character(tmp_path, capsys, monkeypatch):
    out = tmp_path / "tok"
    summary = run_tagger({**TINY, "dataset": "python-tokens", "max_chars": 20_000,
                          "seq_len": 120, "steps": 3, "out": str(out)})
    assert summary["token_kind"] == "char" and summary["split"] == "fixed"
    lines = ["def f(x):", "    return x + 1  # one", ""]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["predict", str(out)]) == 0
    printed = capsys.readouterr().out.split("\n")
    assert len(printed) == 4 and printed[-1] == ""
    for line, tags in zip(lines, printed):
        assert len(tags.split()) == len(line) and set(tags.split()) <= set(PYTHON_TAGS)


def test_a_killed_then_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """Killed after step 6 (two steps after a checkpoint), resumed, stopped by SIGTERM after
    step 11, resumed to the end: the weights, metrics lines and summary of one run (word
    dropout draws random numbers: their generator is restored too)."""
    volatile = ("elapsed", "tokens_per_second", "train_seconds", "out")

    class Killed(Exception):
        pass

    def outcome(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        kept = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in lines]
        summary = json.loads((out / "summary.json").read_text())
        return (load_checkpoint(out / "checkpoints" / "last.safetensors").model_state, kept,
                {k: v for k, v in summary.items() if k not in volatile})

    settings = {**TINY, "conll": str(_conll(tmp_path / "r.conll", 100)), "steps": 16,
                "checkpoint_every": 4, "eval_every": 8, "log_every": 3, "dropout": 0.2}
    run_tagger({**settings, "out": str(tmp_path / "ref")})
    original = trainer_mod.Trainer._after_step
    stops = {6: "kill", 11: "term"}  # once each; 80 sentences are 5 batches: both mid-epoch

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
        run_tagger({**settings, "out": str(out)})
    assert run_tagger({"resume": str(out)})["status"] == "interrupted"
    monkeypatch.undo()
    assert run_tagger({"resume": str(out)})["status"] == "completed"
    (want, *want_logs), (got, *got_logs) = outcome(tmp_path / "ref"), outcome(out)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert want_logs == got_logs


def test_pretrained_word_vectors_start_the_embedding_and_can_stay_frozen(tmp_path):
    vectors = tmp_path / "v.txt"
    vectors.write_text("3 4\nAnn 1 2 3 4\ncat 5 5 5 5\nunrelated 9 9 9 9\n")
    out = tmp_path / "run"
    summary = run_tagger({**TINY, "conll": str(_conll(tmp_path / "r.conll", 60)), "steps": 3,
                          "embeddings": str(vectors), "freeze_embeddings": True,
                          "out": str(out)})
    assert 0 < summary["embeddings_coverage"] < 1
    t = rnnkit.load(out)
    assert t.model.config["embed"] == 4 and t.model.config["freeze_embedding"]
    weight = t.model.input.weight
    assert weight[t.vocab.index["Ann"]].tolist() == [1, 2, 3, 4]  # frozen: as read
    assert weight[t.vocab.index["cat"]].tolist() == [5, 5, 5, 5]
    with pytest.raises(UserError, match="--conll"):
        run_tagger({**TINY, "dataset": "python-tokens", "max_chars": 20_000, "steps": 1,
                    "embeddings": str(vectors), "out": str(tmp_path / "chars")})


@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--eval-examples", "-1"], "--eval-examples must be a whole number"),
    (["--weight-decay", "-1"], "--weight-decay must be"),
    (["--vocab-size", "0"], "--vocab-size must be"),
    (["--val-fraction", "0"], "--val-fraction must be above 0"),  # was a KeyError traceback
])
def test_bad_settings_are_one_line_and_exit_2(tmp_path, capsys, flags, words):
    data = _conll(tmp_path / "t.conll", 40)
    never = tmp_path / "never"
    _fails(capsys, ["train", "tagger", "--conll", str(data), "--out", str(never), "--steps",
                    "2", "--no-progress", *flags], words)
    assert not never.exists()
