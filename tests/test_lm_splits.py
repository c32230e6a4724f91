"""`rnnkit train lm`'s splits: --val / --test files, a directory cut by whole files, one text
cut at its tail; what summary.json and config.json record; `rnnkit evaluate RUN` scoring the
run's own test text; the errors; the main job's split unchanged."""

import hashlib
import json
import platform

import pytest

from rnnkit.cli.main import main
from rnnkit.data.corpora import load_corpus, load_splits, python_source_files, split_corpus
from rnnkit.errors import UserError
from rnnkit.train.lm import DEFAULTS, lm_splits, run_lm

TINY = {"hidden": 16, "embed": 8, "steps": 4, "seq_len": 16, "batch_size": 4, "warmup": 1,
        "eval_every": 2, "progress": False, "sample_length": 5}


def _lines(tag: str, n: int = 20) -> str:
    return "".join(f"{tag} line {i}: {'ab' * (i % 5)}\n" for i in range(n))


def _directory(tmp_path, n: int, name: str = "corpus"):
    """``n`` files of about the same size (f00.txt ...) in a directory."""
    d = tmp_path / name
    d.mkdir()
    for i in range(n):
        (d / f"f{i:02}.txt").write_text(_lines(f"file{i:02}"))
    return d


def _splits(**kw):
    lines = []
    return load_splits(report=lines.append, **kw), lines


# ---- the main job keeps its split -------------------------------------------------------

# sha256 of train, val and test joined by NUL for the default dataset, computed before --val,
# --test and the by-file split existed; keyed by the Python that gave its standard library
MAIN_JOB = {("3.11.7", 730): "8bc90d9ad7bd9a80156d79f8da74cc328b241ba3af1010d859e67b6025366472"}


def test_the_main_jobs_split_is_unchanged():
    parts = lm_splits(DEFAULTS)
    assert parts.kind == "tail" and DEFAULTS["dataset"] is None and DEFAULTS["text"] is None
    old = split_corpus(load_corpus(None, None, DEFAULTS["max_chars"]), 0.05, 0.05)
    assert (parts.train, parts.val, parts.test) == old
    known = MAIN_JOB.get((platform.python_version(), len(python_source_files())))
    if known is not None:
        assert hashlib.sha256("\0".join(old).encode()).hexdigest() == known


# ---- how the text is cut ------------------------------------------------------------------

def test_one_text_is_cut_at_its_tail_without_a_word(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text(_lines("x", 200))
    parts, lines = _splits(text=f, val_fraction=0.1, test_fraction=0.1)
    assert parts.kind == "tail" and lines == []
    assert (parts.train, parts.val, parts.test) == split_corpus(f.read_text(), 0.1, 0.1)


@pytest.mark.parametrize("glob", [False, True])
def test_a_directory_is_cut_by_whole_files_the_last_ones_held_out(tmp_path, glob):
    d = _directory(tmp_path, 20)
    spec = f"{d}/*.txt" if glob else d
    parts, lines = _splits(text=spec, val_fraction=0.09, test_fraction=0.04)
    texts = [(d / f"f{i:02}.txt").read_text() for i in range(20)]
    assert parts.kind == "by-file"
    assert parts.test == texts[19]  # 4 %: the last file (5 % of the text)
    assert parts.val == texts[17] + texts[18]  # 9 %: the two before it
    assert parts.train == "".join(texts[:17])
    assert parts.chars() == {"train_chars": len(parts.train), "val_chars": len(parts.val),
                             "test_chars": len(parts.test)}
    assert len(lines) == 2 and "split by whole files" in lines[1]
    assert "validation 2 files" in lines[1] and "f17.txt, f18.txt" in lines[1]
    assert "test 1 file (" in lines[1] and "f19.txt" in lines[1]


def test_max_chars_cuts_the_text_before_it_is_split_by_files(tmp_path):
    d = _directory(tmp_path, 6)
    texts = [(d / f"f{i:02}.txt").read_text() for i in range(6)]
    first = texts[4][:texts[4].index("\n") + 1]
    max_chars = 4 * len(texts[0]) + len(first) + 3  # cut after f04.txt's first line
    parts, _ = _splits(text=d, max_chars=max_chars)
    assert parts.kind == "by-file"
    assert parts.test == texts[3] + first  # 5 %: the last line and the file before it
    assert parts.val == texts[2] and parts.train == texts[0] + texts[1]
    assert parts.train + parts.val + parts.test == load_corpus(text=d, max_chars=max_chars)


@pytest.mark.parametrize("sizes, why", [
    ([20, 20], "too few files to split by whole files (2; 3 needed)"),
    ([20, 20, 20], "would leave training"),  # one file of three: a third, not 90 %
    ([40, 40, 40, 40, 300], "would leave training"),  # the last file holds most of the text
])
def test_too_few_or_too_unequal_files_fall_back_to_the_tail_and_say_so(tmp_path, sizes, why):
    d = tmp_path / "d"
    d.mkdir()
    for i, n in enumerate(sizes):
        (d / f"f{i}.txt").write_text(_lines(f"f{i}", n))
    parts, lines = _splits(text=d)
    assert parts.kind == "tail"
    assert (parts.train, parts.val, parts.test) == split_corpus(load_corpus(text=d), 0.05, 0.05)
    assert len(lines) == 2 and why in lines[1] and "cut from the tail" in lines[1]


def test_only_the_test_part_cut_by_files_needs_two(tmp_path):
    d = _directory(tmp_path, 2)
    held = tmp_path / "valid.txt"
    held.write_text(_lines("held"))
    parts, _ = _splits(text=d, val=held, test_fraction=0.3)
    assert parts.kind == "files" and parts.val == held.read_text()
    assert parts.test == (d / "f01.txt").read_text()
    assert parts.train == (d / "f00.txt").read_text()


def test_val_and_test_files_leave_all_of_the_text_to_training(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text(_lines("train", 100))
    (tmp_path / "valid").mkdir()
    (tmp_path / "valid" / "a.txt").write_text("valid a\n")
    (tmp_path / "valid" / "b.txt").write_text("valid b\n")
    test = tmp_path / "test.txt"
    test.write_text(_lines("test"))
    parts, lines = _splits(text=train, val=tmp_path / "valid", test=test, max_chars=500)
    assert parts.kind == "files"
    assert parts.train == load_corpus(text=train, max_chars=500)  # max_chars is --text's only
    assert parts.val == "valid a\nvalid b\n" and parts.test == test.read_text()
    assert any(line.startswith(f"--val {tmp_path / 'valid'}: read 2 files") for line in lines)
    only_val, _ = _splits(text=train, val=test, test_fraction=0.1)
    assert only_val.kind == "files" and only_val.val == test.read_text()
    tail = split_corpus(train.read_text(), 0.0, 0.1)
    assert (only_val.train, only_val.test) == (tail[0], tail[2])


def test_a_run_from_before_val_and_test_splits_as_it_did():
    old_config = {"dataset": "hello", "text": None, "max_chars": 300}  # no val, test, fractions
    parts = lm_splits(old_config)
    assert (parts.train, parts.val, parts.test) == split_corpus("hello" * 60, 0.05, 0.05)


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, words", [
    ({"dataset": "hello", "val": "v.txt"}, "built-in corpus hello keeps its own split"),
    ({"test": "t.txt"}, "built-in corpus python-source keeps its own split"),
    ({"dataset": "hello", "val_fraction": -0.1}, "--val-fraction must be at least 0"),
    ({"dataset": "hello", "test_fraction": 1.0}, "--test-fraction must be at least 0 and below 1"),
    ({"dataset": "hello", "val_fraction": 0.5, "test_fraction": 0.5}, "keep their sum below 1"),
])
def test_split_mistakes_are_user_errors(kw, words):
    with pytest.raises(UserError, match=words):
        load_splits(**kw)


@pytest.fixture
def corpus_file(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text(_lines("train", 100))
    return f


def _fails(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and words in err, err
    return err


@pytest.mark.parametrize("name, data, words", [
    ("missing.txt", None, "check the path given to --val"),
    ("empty.txt", b"", "is empty"),
    ("binary.txt", b"ab\x00cd", "looks binary"),
])
def test_bad_val_or_test_files_are_one_line_exit_2(tmp_path, corpus_file, capsys, name, data,
                                                   words):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    flag = "--val" if data is None else "--test"
    err = _fails(capsys, ["train", "lm", "--text", str(corpus_file), flag, str(path),
                          "--out", str(tmp_path / "run")], words)
    assert str(path) in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_split_flags_with_a_builtin_or_out_of_range_are_one_line_exit_2(tmp_path, corpus_file,
                                                                         capsys):
    out = ["--out", str(tmp_path / "run")]
    _fails(capsys, ["train", "lm", "--dataset", "hello", "--val", str(corpus_file), *out],
           "keeps its own split")
    _fails(capsys, ["train", "--text", str(corpus_file), "--test-fraction", "1.5", *out],
           "--test-fraction must be at least 0 and below 1, got 1.5")


# ---- training records the split; evaluate scores the run's own test text ------------------

def _held_out_files(tmp_path):
    (tmp_path / "train.txt").write_text(_lines("train", 120))
    (tmp_path / "valid.txt").write_text(_lines("valid", 15))
    (tmp_path / "test.txt").write_text(_lines("test", 15))
    return {"text": str(tmp_path / "train.txt"), "val": str(tmp_path / "valid.txt"),
            "test": str(tmp_path / "test.txt")}


KINDS = {
    "files": _held_out_files,
    "by-file": lambda tmp_path: {"text": str(_directory(tmp_path, 12)), "val_fraction": 0.1,
                                 "test_fraction": 0.1},
    "tail": lambda tmp_path: {"text": str(_directory(tmp_path, 12)) + "/f00.txt"},
}


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", KINDS)
def test_the_run_records_its_split_and_evaluate_scores_its_own_test_text(tmp_path, one_thread,
                                                                         capsys, kind):
    data = KINDS[kind](tmp_path)
    out = tmp_path / "run"
    summary = run_lm({**TINY, **data, "out": str(out)})
    parts = lm_splits({**DEFAULTS, **data})
    assert summary["split"] == kind == parts.kind
    assert {k: summary[k] for k in ("train_chars", "val_chars", "test_chars")} == parts.chars()
    config = json.loads((out / "config.json").read_text())
    assert config["split"] == kind and config["split_chars"] == parts.chars()
    assert (config["val"], config["test"]) == (data.get("val"), data.get("test"))
    capsys.readouterr()

    result = _json(capsys, ["evaluate", str(out), "--json"])
    assert result["chars"] == summary["test_chars"] == len(parts.test)
    assert result["bpc"] == pytest.approx(summary["test_bpc"], abs=1e-6)
    val = _json(capsys, ["evaluate", str(out), "--split", "val", "--json"])
    assert val["chars"] == summary["val_chars"]
    assert val["bpc"] == pytest.approx(summary["val_bpc"], abs=1e-6)
    named = _json(capsys, ["evaluate", str(out), "--text", data["text"], "--split", "test",
                           "--json"])  # the run's text named again: the run's own split
    assert named == result


def test_evaluate_says_which_held_out_file_moved(tmp_path, one_thread, capsys):
    data = _held_out_files(tmp_path)
    out = tmp_path / "run"
    run_lm({**TINY, **data, "out": str(out)})
    (tmp_path / "test.txt").rename(tmp_path / "elsewhere.txt")
    capsys.readouterr()
    err = _fails(capsys, ["evaluate", str(out), "--json"],
                 f"the run was trained on --test {data['test']}, which is not found")
    assert "--text PATH" in err
    moved = _json(capsys, ["evaluate", str(out), "--text", str(tmp_path / "elsewhere.txt"),
                           "--json"])
    assert moved["chars"] == len((tmp_path / "elsewhere.txt").read_text())
