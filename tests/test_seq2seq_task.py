"""`rnnkit train seq2seq`, `rnnkit translate` and `rnnkit.load` on a seq2seq run: the run
directory, resume, the filter contract, and every bad input as one line with exit status 2."""

import itertools
import json
import os
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.pairs import Pairs, load_pairs
from rnnkit.data.vocab import Vocab
from rnnkit.errors import UserError
from rnnkit.train import trainer as trainer_mod
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.seq2seq import nearest_pair_scores, run_seq2seq

TINY = {"hidden": 24, "embed": 8, "batch_size": 16, "warmup": 5, "lr": 0.01,
        "eval_examples": 40, "progress": False}


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _tsv(path: Path, n: int = 120) -> Path:
    """Pairs a model can learn in a few steps: a word and the word reversed."""
    g = torch.Generator().manual_seed(0)
    letters = "abcdef"
    lines = []
    for _ in range(n):
        word = "".join(letters[int(i)] for i in torch.randint(6, (int(torch.randint(2, 5, (1,),
                                                                                      generator=g)),),
                                                                generator=g))
        lines.append(f"{word}\t{word[::-1]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run shared by the tests that only read it."""
    d = tmp_path_factory.mktemp("s2s")
    summary = run_seq2seq({**TINY, "tsv": str(_tsv(d / "pairs.tsv", 300)), "steps": 200,
                           "eval_every": 100, "out": str(d / "run"), "attention": "bahdanau"})
    return d / "run", summary


def test_the_run_directory_holds_what_every_task_writes(trained):
    run, summary = trained
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["task"] == "seq2seq" and on_disk["status"] == "completed"
    for key in ("val_loss", "val_exact", "val_accuracy", "test_exact", "test_loss",
                "examples_per_second", "train_examples", "source_vocab", "target_vocab"):
        assert key in on_disk, key
    assert 0 <= on_disk["test_exact"] <= 1
    assert on_disk["val_exact"] > 0.5  # reversing 2-4 letters is learnt in 200 steps
    # the nearest-training-pair baseline: a reversal cannot be copied, so it is exact just
    # where the held-out source itself is a training source (the pairs hold repeats)
    config = json.loads((run / "config.json").read_text())
    pairs = load_pairs(tsv=config["tsv"], seed=config["seed"])
    seen = {s for s, _ in pairs.train}
    for split in ("val", "test"):
        held = getattr(pairs, split)
        assert on_disk[f"{split}_nearest_exact"] == sum(s in seen for s, _ in held) / len(held)
    assert 0 < on_disk["val_nearest_exact"] < on_disk["val_exact"]
    for name in ("config.json", "metrics.jsonl", "samples.txt", "loss.png", "attention.png",
                 "checkpoints/best.safetensors", "checkpoints/last.safetensors",
                 "checkpoints/vocab.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "seq2seq" and config["model"]["attention"] == "bahdanau"


def test_load_translates_with_its_attention(trained):
    run, _ = trained
    t = rnnkit.load(run)
    out = t.translate("abcd")
    text, attention = out
    assert isinstance(text, str) and attention.shape == (len(out.output_tokens), 4)
    assert torch.allclose(attention.sum(-1), torch.ones(len(attention)))
    assert t.translate("abcd", beam=4).score >= out.score - 1e-6
    with pytest.raises(UserError, match="not in the source vocabulary"):
        t.translate("abz")


def test_translate_cli_one_text_stdin_filter_and_json(trained, capsys, monkeypatch):
    import io

    run, _ = trained
    expected = rnnkit.load(run).translate("fed").text
    assert main(["translate", str(run), "fed"]) == 0
    assert capsys.readouterr().out == expected + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("fed\n\nab\nazz\ncab\n"))
    assert main(["translate", str(run)]) == 2  # one line could not be read
    captured = capsys.readouterr()
    lines = captured.out.split("\n")
    assert len(lines) == 6 and lines[-1] == ""  # exactly one output line per input line
    assert lines[0] == expected and lines[1] == "" and lines[3] == ""
    assert "line 4" in captured.err and "'z'" in captured.err
    assert main(["translate", str(run), "fed", "--json", "--beam", "3"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["input"] == "fed" and len(obj["attention"][0]) == 3
    assert main(["translate", str(run), "fed", "--show-attention"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == expected and len(out) == 2 + len(expected) + 1  # header, rows, </s>


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    tsv = _tsv(tmp_path / "p.tsv", 80)
    settings = {**TINY, "tsv": str(tsv), "steps": 24, "checkpoint_every": 4,
                "eval_every": 8, "log_every": 3, "dropout": 0.2}
    run_seq2seq({**settings, "out": str(tmp_path / "ref")})

    original = trainer_mod.Trainer._after_step

    class Crash(Exception):
        pass

    def crashing(self, bar):
        original(self, bar)
        if self.p.step in (6, 13):  # 6: mid-epoch (80 pairs are 5 batches), 13: before a save
            raise Crash

    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", crashing)
    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        run_seq2seq({**settings, "out": str(out)})
    with pytest.raises(Crash):
        run_seq2seq({"resume": str(out)})
    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", original)
    run_seq2seq({"resume": str(out)})
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.safetensors").model_state
    b = load_checkpoint(out / "checkpoints" / "last.safetensors").model_state
    assert all(torch.equal(a[k], b[k]) for k in a)
    volatile = ("elapsed", "examples_per_second", "train_seconds", "out")
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    got = json.loads((out / "summary.json").read_text())
    assert {k: v for k, v in ref.items() if k not in volatile} == \
        {k: v for k, v in got.items() if k not in volatile}


def _fails(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err
    return err[0]


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys, trained):
    out = ["--out", str(tmp_path / "never"), "--steps", "2", "--no-progress"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nno tab here\n")
    _fails(capsys, ["train", "seq2seq", "--tsv", str(bad), *out], "line 2")
    bad.write_text("a\tb\nc\t \n")
    _fails(capsys, ["train", "seq2seq", "--tsv", str(bad), *out], "empty")
    bad.write_text("source,target\nab,ba\n")
    _fails(capsys, ["train", "seq2seq", "--tsv", str(bad), *out], "looks like CSV; save it as "
           "tab-separated (TSV)")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    _fails(capsys, ["train", "seq2seq", "--tsv", str(bad), *out], "UTF-8")
    long = _tsv(tmp_path / "long.tsv", 40)
    _fails(capsys, ["train", "seq2seq", "--tsv", str(long), "--max-length", "3", *out],
           "--max-length")
    _fails(capsys, ["train", "seq2seq", "--dataset", "nope", *out], "addition")
    _fails(capsys, ["train", "seq2seq", "--attention", "luong", *out], "bahdanau")
    assert not (tmp_path / "never").exists()  # nothing written for a refused run
    run, _ = trained
    _fails(capsys, ["translate", str(run), "fez"], "'z' is not in the source vocabulary")
    _fails(capsys, ["translate", str(run), "fed", "--beam", "0"], "--beam")
    _fails(capsys, ["sample", str(run)], "rnnkit translate")
    _fails(capsys, ["translate", str(tmp_path)], "not an rnnkit run directory")


def test_resume_says_which_task_a_run_is(tmp_path, capsys, trained):
    run, _ = trained
    _fails(capsys, ["train", "lm", "--resume", str(run)], "rnnkit train seq2seq --resume")


def test_a_reversed_run_reads_the_input_reversed(tmp_path):
    """--reverse (the Keras addition trick): translate reverses the input as training did, and
    shows the attention in the order the user wrote the source."""
    out = tmp_path / "rev"
    run_seq2seq({**TINY, "dataset": "addition", "digits": 2, "reverse": True, "steps": 3,
                 "out": str(out)})
    t = rnnkit.load(out)
    result = t.translate("12+3")
    ids = t.source.encode("3+21")
    outs, maps = t.model.greedy(torch.tensor(ids)[:, None], torch.tensor([len(ids)]))
    assert result.text == t.target.decode(outs[0])
    assert torch.allclose(result.attention, maps[0].flip(-1), atol=1e-6)


def test_word_tokens_map_words_and_refuse_unseen_ones(tmp_path):
    tsv = tmp_path / "w.tsv"
    tsv.write_text("".join(f"the {a} cat\tle chat {b}\n" for a, b in
                           [("big", "grand"), ("small", "petit"), ("black", "noir")] * 10))
    out = tmp_path / "words"
    summary = run_seq2seq({**TINY, "tsv": str(tsv), "tokens": "word", "steps": 3,
                           "out": str(out)})
    assert summary["source_vocab"] == 4 + 5 and summary["target_vocab"] == 4 + 5
    t = rnnkit.load(out)
    result = t.translate("the big cat")
    assert result.source_tokens == ["the", "big", "cat"] and result.attention.shape[1] == 3
    assert all(w in t.target.tokens for w in result.text.split())
    with pytest.raises(UserError, match="'dog' is not in the source vocabulary"):
        t.translate("the big dog")


def test_bad_task_settings_are_one_line_and_write_nothing(tmp_path, capsys):
    pairs = _tsv(tmp_path / "pairs.tsv", 40)
    out = ["--out", str(tmp_path / "never"), "--steps", "2", "--no-progress"]
    base = ["train", "seq2seq", "--tsv", str(pairs), *out]
    _fails(capsys, [*base, "--batch-size", "0"], "--batch-size")  # was a ZeroDivisionError
    _fails(capsys, [*base, "--eval-examples", "-5"], "--eval-examples")  # likewise
    _fails(capsys, [*base, "--vocab-size", "-3"], "--vocab-size")  # silently dropped 3 tokens
    # no validation pairs to choose the best checkpoint on: was a KeyError after training
    _fails(capsys, [*base, "--val-fraction", "0", "--test-fraction", "0"], "--val PATH")
    assert not (tmp_path / "never").exists()


def test_translate_drops_surrounding_whitespace_as_training_did(trained, capsys, monkeypatch):
    import io

    run, _ = trained
    t = rnnkit.load(run)
    assert t.translate(" fed\t").text == t.translate("fed").text  # was: ' ' not in vocabulary
    monkeypatch.setattr("sys.stdin", io.StringIO("fed \r\n   \nab\n"))
    assert main(["translate", str(run)]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[:3] == [t.translate("fed").text, "", t.translate("ab").text]


def test_translate_into_a_closed_pipe_stops_quietly(trained, tmp_path, monkeypatch):
    import io

    class ClosedPipe(io.StringIO):  # `rnnkit translate RUN < in.txt | head -1`, head gone
        def __init__(self, path):
            super().__init__()
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT)

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return self.fd

    run, _ = trained
    monkeypatch.setattr("sys.stdin", io.StringIO("fed\nab\n"))
    monkeypatch.setattr("sys.stdout", ClosedPipe(tmp_path / "sink"))
    assert main(["translate", str(run)]) == 0  # was a BrokenPipeError traceback


def test_a_capped_character_vocabulary_keeps_the_most_frequent():
    """--vocab-size N keeps the N most frequent characters (then in code-point order), not the
    first N code points."""
    from rnnkit.data.vocab import Vocab

    kept = Vocab.build(["zzzzzzzz yyyy a b"], "char", max_size=3)
    specials = len(kept.tokens) - 3
    assert kept.tokens[specials:] == [" ", "y", "z"]


# ---- the nearest-training-pair baseline ---------------------------------------------------

CHARS = Vocab.build(["abcdxyz0123456789"], "char", "target")


def test_the_baseline_is_exact_when_the_held_out_sources_are_training_sources():
    train = [("abc", "1"), ("abd", "22"), ("xyz", "333"), ("cab", "4"), ("zyx", "55")]
    scores = nearest_pair_scores(Pairs(train, train[::-1], train[1:3], "t", "files"), CHARS)
    assert scores == {"val_nearest_exact": 1.0, "val_nearest_accuracy": 1.0,
                      "test_nearest_exact": 1.0, "test_nearest_accuracy": 1.0}


def test_the_baseline_takes_the_most_similar_sources_target_and_scores_it_as_the_network():
    train = [("abcd", "1"), ("xyz", "2")]
    # "abcx" is nearest "abcd" (right), "xyw" nearest "xyz" (its "2" is not "9")
    held = [("abcx", "1"), ("xyw", "9")]
    scores = nearest_pair_scores(Pairs(train, held, [], "t", "files"), CHARS)
    # tokens with </s>: "1" right on 2 of 2, "9" -> "2" right on </s> only: 3 of 4
    assert scores == {"val_nearest_exact": 0.5, "val_nearest_accuracy": 0.75}


def test_the_baseline_cannot_copy_a_mapping_it_has_not_seen():
    """Reversed words, held-out words never in training: every guess is some other word
    reversed, so none is exact."""
    words = ["".join(w) for w in itertools.permutations("abcdxyz", 3)]
    train = [(w, w[::-1]) for w in words[:150]]
    held = [(w, w[::-1]) for w in words[150:]]
    scores = nearest_pair_scores(Pairs(train, held, held, "t", "files"), CHARS)
    assert scores["val_nearest_exact"] == 0.0 and scores["test_nearest_exact"] == 0.0
    # a guess of the same length always has </s> right, one of the 4 tokens
    assert 0.25 <= scores["val_nearest_accuracy"] < 1


def test_the_baseline_searches_and_scores_at_most_its_caps():
    train = [(f"a{i}", f"{i}") for i in range(100)]
    scores = nearest_pair_scores(Pairs(train, train, [], "t", "files"), CHARS, cap=1)
    assert scores["val_nearest_exact"] == 1 / 100  # one target for every source
    # half the held-out sources are training sources: scored on one pair, 0 or 1, not 0.5
    held = train[:50] + [(f"b{i}", "x") for i in range(50)]
    assert nearest_pair_scores(Pairs(train, held, [], "t", "files"), CHARS)[
        "val_nearest_exact"] == 0.5
    one = nearest_pair_scores(Pairs(train, held, [], "t", "files"), CHARS, held_out=1)
    assert one["val_nearest_exact"] in (0.0, 1.0)


def test_the_cli_drops_a_header_says_so_and_prints_the_baseline(tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("source\ttarget\n" + _tsv(tmp_path / "body.tsv", 60).read_text())
    out = tmp_path / "run"
    assert main(["train", "seq2seq", "--tsv", str(pairs), "--steps", "2", "--hidden", "8",
                 "--embed", "4", "--no-progress", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{pairs}: line 1 ('source'<TAB>'target') is taken as a header" in captured.err
    assert "nearest-training-pair baseline: val" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_examples"] + summary["val_examples"] + summary["test_examples"] == 60
    val = next(line for line in captured.out.splitlines() if line.startswith("val:"))
    assert f"nearest training pair {summary['val_nearest_exact']:.1%} exact" in val
    assert main(["train", "seq2seq", "--tsv", str(pairs), "--steps", "2", "--hidden", "8",
                 "--embed", "4", "--no-progress", "--no-header", "--no-baseline", "--out",
                 str(tmp_path / "kept")]) == 0
    captured = capsys.readouterr()
    assert "as a header" not in captured.err and "nearest" not in captured.out
    kept = json.loads((tmp_path / "kept" / "summary.json").read_text())
    assert kept["train_examples"] + kept["val_examples"] + kept["test_examples"] == 61
    assert "val_nearest_exact" not in kept
