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
    api = rnnkit.load(run_dir).generate("h", 40, 1.5, 3, 0.95, seed=5)
    assert first.rstrip("\n") == ("h" + api).rstrip("\n")


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
