"""`rnnkit train`: flags, --config, --json, and every bad input as one line and exit status 2."""

import json

import pytest

from rnnkit.cli.main import main

TINY = ["--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "8",
        "--steps", "6", "--warmup", "1", "--eval-every", "3", "--sample-length", "5",
        "--no-progress"]


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _fails(capsys, argv, words):
    if "--out" not in argv and "--resume" not in argv:
        argv = [*argv, "--out", "/nonexistent/never-written"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rnnkit: error: ") and words in err[-1], err
    return err


def _text(tmp_path, name, data: bytes):
    f = tmp_path / name
    f.write_bytes(data)
    return str(f)


def test_train_lm_json_and_run_dir(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "lm", "--dataset", "hello", *TINY, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["task"] == "lm" and summary["status"] == "completed"
    assert summary["steps"] == 6 and summary["val_bpc"] > 0 and summary["val_ngram_bpc"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["hidden"] == 16 and config["dataset"] == "hello" and config["seed"] == 0
    assert (out / "samples.txt").read_text().count("--- step") == 2


def test_train_alone_is_lm_and_prints_the_sample_command(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "hello", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "val bpc" in text and f"rnnkit sample {out} --prime" in text


def test_config_file_and_flags_override_it(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"hidden": 12, "cell": "gru", "seed": 5}))
    out = tmp_path / "run"
    assert main(["train", "lm", "--dataset", "hello", *TINY, "--config", str(cfg),
                 "--seed", "7", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden"], config["cell"], config["seed"]) == (16, "gru", 7)


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "lm", "--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_missing_path(tmp_path, capsys):
    _fails(capsys, ["train", "--text", str(tmp_path / "nope.txt"), *TINY, "--out",
                    str(tmp_path / "r")], "no such file")


def test_empty_file(tmp_path, capsys):
    _fails(capsys, ["train", "--text", _text(tmp_path, "e.txt", b""), *TINY], "is empty")


def test_binary_file(tmp_path, capsys):
    f = _text(tmp_path, "b.bin", b"\x00\x01\x02abc" * 50)
    _fails(capsys, ["train", "--text", f, *TINY], "looks binary")


def test_non_utf8_file(tmp_path, capsys):
    f = _text(tmp_path, "l.txt", "caf\xe9 cr\xe8me ".encode("latin-1") * 50)
    _fails(capsys, ["train", "--text", f, *TINY], "not UTF-8")


def test_directory_without_text(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.bin").write_bytes(b"\x00" * 10)
    _fails(capsys, ["train", "--text", str(d), *TINY], "no UTF-8 text files")


def test_sequence_longer_than_corpus(tmp_path, capsys):
    f = _text(tmp_path, "s.txt", b"a short text\n" * 4)
    argv = ["train", "--text", f, *TINY, "--seq-len", "500", "--out", str(tmp_path / "r")]
    _fails(capsys, argv, "--seq-len 500 is longer than the training text")


def test_unknown_cell(tmp_path, capsys):
    _fails(capsys, ["train", "--dataset", "hello", *TINY, "--cell", "transformer",
                    "--out", str(tmp_path / "r")], "unknown cell 'transformer'")


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    _fails(capsys, ["train", "--dataset", "hello", *TINY, "--out", str(out)], "--resume")
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("damage", ["truncated", "pickle"])
def test_corrupt_checkpoint_on_resume(tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "hello", *TINY, "--out", str(out)]) == 0
    last = out / "checkpoints" / "last.safetensors"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:100])
    else:
        import pickle

        last.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _fails(capsys, ["train", "--resume", str(out)], "not an rnnkit checkpoint")


def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    _fails(capsys, ["train", "--resume", str(tmp_path)], "cannot resume")


def test_nonfinite_loss_exits_2_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from rnnkit.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = ["train", "--dataset", "hello", *TINY, "--steps", "30", "--lr", "1e30",
            "--optimizer", "sgd", "--clip", "0", "--warmup", "0", "--checkpoint-every", "1",
            "--out", str(out)]
    _fails(capsys, argv, "the loss became nan")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "nonfinite"
    last = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert last.metadata["step"] == summary["steps"]  # saved before the bad step, not after


def test_unknown_setting_in_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"hiden": 12}))
    _fails(capsys, ["train", "--dataset", "hello", "--config", str(cfg)], "unknown setting")


def test_rnnkit_alone_is_the_main_job_with_the_defaults(monkeypatch, capsys):
    """`rnnkit` and `rnnkit train` call run_lm with no settings (all defaults): a character
    LSTM on the default built-in corpus, a time budget that fits about ten minutes."""
    import rnnkit.train.lm as lm
    from rnnkit.train.config import resolve

    calls = []

    def fake(given):
        calls.append(given)
        settings = resolve(lm.DEFAULTS, given)
        return {"status": "completed", "out": "runs/x", "steps": 1, "train_seconds": 1.0,
                "tokens_per_second": 1.0, "val_bpc": 2.0, "test_bpc": 2.0,
                "val_ngram_bpc": 2.5, "test_ngram_bpc": 2.5, "settings": settings}

    monkeypatch.setattr(lm, "run_lm", fake)
    assert main([]) == 0 and main(["train"]) == 0
    assert calls == [{}, {}]
    d = resolve(lm.DEFAULTS, {})
    assert (d["tokenizer"], d["cell"], d["dataset"]) == ("char", "lstm", None)
    assert d["max_time"] <= 600 and d["steps"] is None
    assert "rnnkit sample runs/x --prime" in capsys.readouterr().out


def test_steps_or_epochs_alone_are_the_whole_budget(tmp_path):
    """The task's default --max-time stands in only when no budget is given: --epochs 33 runs
    33 epochs, not as many as the default clock allows."""
    from rnnkit.train.lm import DEFAULTS as LM
    from rnnkit.train.runs import settings_for
    from rnnkit.train.seq2seq import DEFAULTS as S2S

    for defaults in (LM, S2S):
        assert settings_for({}, defaults)["max_time"] == defaults["max_time"]
        assert settings_for({"steps": 10}, defaults)["max_time"] is None
        assert settings_for({"epochs": 3}, defaults)["max_time"] is None
        assert settings_for({"epochs": 3, "max_time": 5.0}, defaults)["max_time"] == 5.0
        cfg = tmp_path / "c.json"
        cfg.write_text(json.dumps({"max_time": 7}))
        assert settings_for({"epochs": 3, "config": str(cfg)}, defaults)["max_time"] == 7
