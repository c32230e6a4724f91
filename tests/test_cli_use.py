"""`rnnkit sample` and `rnnkit evaluate` through cli.main.main: output, JSON, user mistakes."""

import json

import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data import load_corpus, split_corpus
from test_api import HELLO, make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def hello_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "hello.txt"
    path.write_text(HELLO)
    return path


def test_sample_prints_the_prime_and_its_continuation(run_dir, capsys):
    assert main(["sample", str(run_dir), "--prime", "he", "--length", "10",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "hello\nhello\n"


def test_sample_with_a_seed_is_reproducible_and_matches_the_api(run_dir, capsys):
    argv = ["sample", str(run_dir), "--prime", "h", "--length", "40", "--temperature", "1.5",
            "--top-k", "3", "--top-p", "0.95", "--seed", "5"]
    main(argv)
    first = capsys.readouterr().out
    main(argv)
    assert capsys.readouterr().out == first
    api = rnnkit.load(run_dir).generate("h", 40, 1.5, 3, 0.95, seed=5)  # prime included
    assert api.startswith("h") and first.rstrip("\n") == api.rstrip("\n")


def test_sample_without_the_prime_prints_the_api_continuation(run_dir, capsys):
    argv = ["sample", str(run_dir), "--prime", "he", "--length", "25", "--temperature", "1.5",
            "--seed", "2"]
    assert main([*argv, "--no-include-prime"]) == 0
    tail = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == "he" + tail
    api = rnnkit.load(run_dir).generate("he", 25, 1.5, seed=2, include_prime=False)
    assert tail.rstrip("\n") == api.rstrip("\n")


def test_evaluate_table_and_json_agree_with_the_api(run_dir, hello_file, capsys):
    assert main(["evaluate", str(run_dir), "--text", str(hello_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == pytest.approx(rnnkit.load(run_dir).score(HELLO))
    assert main(["evaluate", str(run_dir), "--text", str(hello_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["tokens", "chars", "loss", "perplexity", "bpc"]
    assert float(lines[-1].split()[1]) == pytest.approx(result["bpc"], abs=1e-4)


def test_evaluate_a_split_of_a_builtin_dataset(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--dataset", "hello", "--split", "test",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    test_part = split_corpus(load_corpus("hello"))[2]
    assert result["chars"] == len(test_part) == 50  # 5 % of the 1000-character corpus
    assert result == pytest.approx(rnnkit.load(run_dir).score(test_part))


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1  # one line
    return err


def test_user_mistakes_are_one_line_and_exit_2(run_dir, hello_file, tmp_path, capsys):
    run, text = str(run_dir), str(hello_file)
    assert "no such run directory" in _error(capsys, ["sample", str(tmp_path / "nope")])
    assert "not an rnnkit run directory" in _error(capsys, ["sample", str(tmp_path)])
    assert "temperature" in _error(capsys, ["sample", run, "--temperature", "-1"])
    assert "temperature" in _error(capsys, ["sample", run, "--temperature", "nan"])
    assert "top-p" in _error(capsys, ["sample", run, "--top-p", "0"])
    assert "top-k" in _error(capsys, ["sample", run, "--top-k", "-3"])
    assert "length" in _error(capsys, ["sample", run, "--length", "-3"])
    assert "no such file" in _error(capsys, ["evaluate", run, "--text", str(tmp_path / "x")])
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x00\x01\x02abc")
    assert "binary" in _error(capsys, ["evaluate", run, "--text", str(binary)])
    assert "--text" in _error(capsys, ["evaluate", run])
    assert "not both" in _error(capsys, ["evaluate", run, "--text", text, "--dataset", "hello"])


def test_corrupt_or_foreign_checkpoint_is_exit_2(tmp_path, hello_file, capsys):
    run = make_run(tmp_path / "run", steps=1)
    ckpt = run / "checkpoints" / "best.safetensors"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # truncated, as a kill mid-copy would leave it
    assert "not an rnnkit checkpoint" in _error(capsys, ["evaluate", str(run), "--text",
                                                         str(hello_file)])
    ckpt.write_bytes(b"\x80\x04\x95" + b"pickle" * 20)  # a pickle: never unpickled
    assert "not an rnnkit checkpoint" in _error(capsys, ["sample", str(run)])


@pytest.fixture(scope="module")
def trained_hello(tmp_path_factory):
    """A run trained by the trainer itself (run_lm, as `rnnkit train lm` does) on "hello"."""
    from rnnkit.train.lm import run_lm

    out = tmp_path_factory.mktemp("trained") / "run"
    run_lm({"dataset": "hello", "max_chars": 600, "hidden": 32, "embed": 16, "steps": 80,
            "seq_len": 16, "batch_size": 4, "lr": 0.01, "warmup": 5, "eval_every": 40,
            "progress": False, "sample_length": 10, "out": str(out)})
    return out


def test_a_trained_run_samples_hello(trained_hello, capsys):
    assert main(["sample", str(trained_hello), "--prime", "h", "--length", "14",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "hellohellohello\n"


def test_evaluate_the_runs_own_split_reads_the_corpus_as_training_did(trained_hello, capsys):
    """--dataset naming the run's corpus takes its max_chars: --split val is the run's own
    validation text, so the score is the val_bpc training reported."""
    assert main(["evaluate", str(trained_hello), "--dataset", "hello", "--split", "val",
                 "--json", "--checkpoint", "best"]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((trained_hello / "summary.json").read_text())
    assert result["chars"] == 30  # 5 % of the 600 characters training read
    assert result["bpc"] == pytest.approx(summary["val_bpc"], rel=1e-5)


# ---- evaluate on the run's own corpus ------------------------------------------------------

TINY = {"hidden": 16, "embed": 8, "steps": 6, "seq_len": 16, "batch_size": 4, "warmup": 2,
        "eval_every": 3, "progress": False, "sample_length": 5}


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_without_data_scores_the_default_corpus_as_training_read_it(
        tmp_path_factory, one_thread, capsys):
    """A default `rnnkit train` records "dataset": null; evaluate finds the corpus anyway."""
    from rnnkit.train.lm import run_lm

    out = tmp_path_factory.mktemp("default") / "run"
    summary = run_lm({**TINY, "max_chars": 3000, "out": str(out)})
    assert json.loads((out / "config.json").read_text())["dataset"] is None
    result = _json(capsys, ["evaluate", str(out), "--json"])
    assert result["bpc"] == pytest.approx(summary["test_bpc"], abs=1e-6)
    val = _json(capsys, ["evaluate", str(out), "--split", "val", "--json"])
    assert val["bpc"] == pytest.approx(summary["val_bpc"], abs=1e-6)


def test_evaluate_without_data_scores_the_runs_own_text_and_says_when_it_moved(
        tmp_path, monkeypatch, one_thread, capsys):
    from rnnkit.train.lm import run_lm

    work = tmp_path / "work"
    work.mkdir()
    (work / "corpus.txt").write_text("".join(f"line {i}: {'ab' * (i % 7)}\n"
                                             for i in range(300)))
    monkeypatch.chdir(work)
    run = str(tmp_path / "run")
    summary = run_lm({**TINY, "text": "corpus.txt", "max_chars": 2000, "out": run})
    result = _json(capsys, ["evaluate", run, "--json"])
    assert result["bpc"] == pytest.approx(summary["test_bpc"], abs=1e-6)
    val = _json(capsys, ["evaluate", run, "--split", "val", "--json"])
    assert val["bpc"] == pytest.approx(summary["val_bpc"], abs=1e-6)
    same = _json(capsys, ["evaluate", run, "--text", str(work / "corpus.txt"), "--split", "test",
                          "--json"])  # the same file by another name is the run's corpus
    assert same == result

    monkeypatch.chdir(tmp_path)  # the relative path no longer leads to it
    err = _error(capsys, ["evaluate", run, "--json"])
    assert "trained on --text corpus.txt, which is not found" in err and "relative" in err
    assert "--text PATH --max-chars 2000 --split test" in err
    fixed = _json(capsys, ["evaluate", run, "--text", "work/corpus.txt", "--max-chars", "2000",
                           "--split", "test", "--json"])  # the fix the message gives
    assert fixed == result


# ---- damaged or foreign checkpoints -------------------------------------------------------

def _rewrite(path, change):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(path, "pt") as fh:
        meta = fh.metadata()
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata=meta)


def _refused(capsys, argv, words):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("rnnkit: error: ") and err.count("\n") == 1
    for w in words:
        assert w in err
    return err


def test_nan_in_the_weights_is_exit_2_not_a_traceback_or_nan_json(tmp_path, hello_file, capsys):
    run = make_run(tmp_path / "run", steps=1)
    ckpt = run / "checkpoints" / "best.safetensors"
    _rewrite(ckpt, lambda t: t["model.rnn.weight_hh_l0"].view(-1).__setitem__(0, float("nan")))
    words = [str(ckpt), "NaN or infinite", "rnn.weight_hh_l0", "train again"]
    _refused(capsys, ["sample", str(run), "--length", "5"], words)
    _refused(capsys, ["evaluate", str(run), "--text", str(hello_file), "--json"], words)


def test_a_best_checkpoint_from_a_run_with_another_vocabulary_is_exit_2(tmp_path, hello_file,
                                                                        capsys):
    run = make_run(tmp_path / "run", steps=1)
    other = make_run(tmp_path / "other", text="the quick brown fox\n" * 5, steps=1)
    (run / "checkpoints" / "best.safetensors").write_bytes(
        (other / "checkpoints" / "best.safetensors").read_bytes())
    words = ["not this run's model", "predicts 18 tokens but the run's tokenizer has 6"]
    _refused(capsys, ["sample", str(run)], words)
    _refused(capsys, ["evaluate", str(run), "--text", str(hello_file), "--json"], words)


def test_a_checkpoint_that_config_json_does_not_describe_is_exit_2(trained_hello, tmp_path,
                                                                   capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_hello, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["hidden"] = 64
    (run / "config.json").write_text(json.dumps(config))
    words = ["not this run's model", "hidden 32 (config.json: 64)", "use --checkpoint last"]
    _refused(capsys, ["evaluate", str(run), "--json"], words)
    _refused(capsys, ["sample", str(run)], words)
