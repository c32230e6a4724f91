"""rnnkit.load(RUN_DIR): generate and score through the Python API."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.scoring import score
from rnnkit.train.checkpoint import save_checkpoint

HELLO = "hello\n" * 40


def make_run(path, text=HELLO, steps=120, seed=0):
    """A run directory as training writes it: a small char LSTM fitted to ``text``."""
    torch.manual_seed(seed)
    tok = build_tokenizer("char", text)
    model = LanguageModel(tok.vocab_size, hidden=24)
    ids = torch.tensor(tok.encode(text))
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        logits, _ = model(ids[:-1].unsqueeze(1))
        loss = F.cross_entropy(logits[:, 0], ids[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(path / "checkpoints" / "best.safetensors", model, None, {"step": steps})
    tok.save(path / "checkpoints")
    (path / "config.json").write_text(json.dumps({"task": "lm", "tokenizer": "char"}))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


def test_load_gives_model_tokenizer_config(run_dir):
    m = rnnkit.load(run_dir)
    assert isinstance(m.model, LanguageModel) and not m.model.training
    assert m.tokenizer.decode(m.tokenizer.encode("hello")) == "hello"
    assert m.config["task"] == "lm"
    assert "lstm" in repr(m)


def test_a_model_fitted_to_hello_writes_hello(run_dir):
    m = rnnkit.load(run_dir)
    assert m.generate("h", length=11, temperature=0) == "hello\nhello\n"  # prime included
    assert m.generate("h", length=11, temperature=0, include_prime=False) == "ello\nhello\n"
    assert m.generate("", length=6, temperature=0) == "hello\n"  # empty prime: after a newline


def test_seed_reproduces_and_stream_joins_to_the_same_text(run_dir):
    m = rnnkit.load(run_dir)
    a = m.generate("he", length=60, temperature=2.0, seed=3)
    assert a == m.generate("he", length=60, temperature=2.0, seed=3)
    assert a != m.generate("he", length=60, temperature=2.0, seed=4)
    pieces = list(m.generate("he", length=60, temperature=2.0, seed=3, stream=True))
    assert pieces[0] == "he" and len(pieces) == 1 + 60 and "".join(pieces) == a


def test_stream_holds_partial_utf8_until_the_character_is_complete():
    from rnnkit.api import _decode_stream

    tok = build_tokenizer("bpe", "plain ascii text\n" * 30, vocab_size=257)
    ids = tok.encode("é🙂a")  # bytes not merged: one token per byte
    assert len(ids) == 2 + 4 + 1
    pieces = list(_decode_stream(tok, iter(ids)))
    assert pieces == ["é", "🙂", "a"]


def test_score_matches_the_model_level_function(run_dir):
    m = rnnkit.load(run_dir)
    s = m.score(HELLO)
    assert s == score(m.model, m.tokenizer, HELLO)
    assert s["chars"] == len(HELLO) and s["bpc"] < 0.2  # it learned the text
    assert s["perplexity"] == pytest.approx(math.exp(s["loss"]))


def test_bad_arguments_are_user_errors(run_dir, tmp_path):
    m = rnnkit.load(run_dir)
    with pytest.raises(UserError, match="temperature"):
        m.generate("h", temperature=-0.5)
    with pytest.raises(UserError, match="top-p"):
        m.generate("h", top_p=2, stream=True)  # raised at the call, not at the first piece
    with pytest.raises(UserError, match="no such run directory"):
        rnnkit.load(tmp_path / "missing")


def test_docstring_example_runs():
    import doctest

    import rnnkit.api

    result = doctest.testmod(rnnkit.api, verbose=False)
    assert result.failed == 0


def test_include_prime_adds_the_prime_before_the_same_continuation(run_dir):
    """``length`` counts generated tokens either way; the continuation does not depend on
    whether the prime is returned, and the same seed gives the same text."""
    m = rnnkit.load(run_dir)
    args = dict(length=30, temperature=1.5, seed=7)
    full = m.generate("hel", **args)
    tail = m.generate("hel", include_prime=False, **args)
    assert full == "hel" + tail and len(tail) == 30
    assert full == m.generate("hel", **args)
    assert "".join(m.generate("hel", stream=True, include_prime=False, **args)) == tail
    assert m.generate("", include_prime=False, **args) == m.generate("", **args)  # nothing to add
