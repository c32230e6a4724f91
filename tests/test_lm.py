"""LanguageModel: shapes, config round trip, weight tying, state carry, against torch.nn."""

import pytest
import torch
from torch import nn

from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel, detach_state
from rnnkit.train.distributed import Dist
from rnnkit.train.lm import DEFAULTS, LMTask


def test_forward_shapes_and_config_round_trip():
    torch.manual_seed(0)
    lm = LanguageModel(11, cell="lstm", embed=6, hidden=8, layers=2, dropout=0.1)
    logits, (h, c) = lm(torch.randint(11, (5, 3)))
    assert logits.shape == (5, 3, 11) and h.shape == c.shape == (2, 3, 8)
    twin = LanguageModel(**lm.config)
    twin.load_state_dict(lm.state_dict())
    lm.eval(), twin.eval()
    x = torch.randint(11, (4, 2))
    assert torch.equal(lm(x)[0], twin(x)[0])


def test_matches_torch_embedding_lstm_linear():
    """Same weights in nn.Embedding + nn.LSTM + nn.Linear give the same logits."""
    torch.manual_seed(1)
    lm = LanguageModel(13, cell="lstm", embed=5, hidden=7, layers=2).eval()
    emb, rnn, out = nn.Embedding(13, 5), nn.LSTM(5, 7, 2), nn.Linear(7, 13)
    emb.weight.data.copy_(lm.embedding.weight)
    rnn.load_state_dict(lm.rnn.state_dict())
    out.load_state_dict(lm.output.state_dict())
    x = torch.randint(13, (6, 4))
    expected = out(rnn(emb(x))[0])
    torch.testing.assert_close(lm(x)[0], expected, rtol=1e-5, atol=1e-6)


def test_state_carry_equals_one_long_call():
    """Two calls carrying the state give the same logits as one call on the whole sequence."""
    torch.manual_seed(2)
    lm = LanguageModel(9, cell="gru", hidden=6).eval()
    x = torch.randint(9, (10, 2))
    whole, _ = lm(x)
    a, s = lm(x[:4], lm.init_state(2))
    b, _ = lm(x[4:], detach_state(s))
    torch.testing.assert_close(torch.cat([a, b]), whole)


def test_weight_tying_shares_one_matrix():
    lm = LanguageModel(10, embed=8, hidden=8, tie_weights=True)
    assert lm.output.weight is lm.embedding.weight
    n_tied = sum(p.numel() for p in lm.parameters())
    n_free = sum(p.numel() for p in LanguageModel(10, embed=8, hidden=8).parameters())
    assert n_free - n_tied == 10 * 8


@pytest.mark.parametrize("kw, words", [
    ({"cell": "nope"}, "unknown cell"),
    ({"embed": 4, "hidden": 8, "tie_weights": True}, "--embed 8"),
    ({"dropout": 1.5}, "dropout"),
    ({"embed": 4, "hidden": 0}, "hidden"),
])
def test_bad_settings_are_user_errors(kw, words):
    with pytest.raises(UserError, match=words):
        LanguageModel(10, **kw)


# ---- training (rnnkit.train.lm) ----------------------------------------------------------

def _tiny(out, **kw):
    return {"dataset": "hello", "hidden": 32, "embed": 16, "batch_size": 4, "seq_len": 16,
            "steps": 80, "warmup": 5, "lr": 0.01, "dropout": 0.0, "eval_every": 40,
            "sample_length": 10, "progress": False, "out": str(out), **kw}


@pytest.mark.parametrize("stateless", [False, True])
def test_overfits_hello_and_generates_it(tmp_path, one_thread, stateless):
    """Deck 003's toy example: trained on "hello" alone, the model writes "hello"."""
    from rnnkit.models.generate import generate
    from rnnkit.train.checkpoint import load_run
    from rnnkit.train.lm import run_lm

    summary = run_lm(_tiny(tmp_path / "run", stateless=stateless))
    assert summary["status"] == "completed" and summary["val_bpc"] < 0.3
    run = load_run(tmp_path / "run")
    ids = generate(run.model, run.tokenizer.encode("h"), 14, temperature=0)
    assert "h" + run.tokenizer.decode(list(ids)) == "hellohellohello"


def test_val_bpc_is_what_scoring_reports(tmp_path, one_thread):
    """The run's val_bpc is `rnnkit evaluate`'s bpc on the validation split, and its n-gram
    baseline is CharNGram(5) fit on the training split."""
    from rnnkit.data import load_corpus, split_corpus
    from rnnkit.models.ngram import CharNGram
    from rnnkit.models.scoring import score
    from rnnkit.train.checkpoint import load_run
    from rnnkit.train.lm import run_lm

    summary = run_lm(_tiny(tmp_path / "run", dataset="python-docs", max_chars=6000,
                           steps=10, tokenizer="bpe", vocab_size=300))
    train, val, test = split_corpus(load_corpus("python-docs", max_chars=6000))
    run = load_run(tmp_path / "run", which="best")
    expected = score(run.model, run.tokenizer, val)
    assert summary["val_bpc"] == pytest.approx(expected["bpc"], rel=1e-5)
    assert summary["val_loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert summary["val_ngram_bpc"] == pytest.approx(CharNGram(5).fit(train).bits_per_char(val))
    assert run.config["tokenizer"] == "bpe" and run.config["steps"] == 10


def test_stateful_batches_carry_the_state(tmp_path, one_thread):
    """In stateful mode the loss of batch i+1 is computed from batch i's final state: it
    equals a forward over both batches at once (the truncation only cuts gradients)."""
    from rnnkit.data import build_tokenizer
    from rnnkit.train.distributed import Dist
    from rnnkit.train.lm import DEFAULTS, LMTask

    text = "abcdefghij" * 30
    tok = build_tokenizer("char", text)
    s = {**DEFAULTS, "batch_size": 2, "seq_len": 5}
    task = LMTask(tok, text, "abc", "abc", s, Dist(), torch.device("cpu"))
    torch.manual_seed(0)
    lm = LanguageModel(tok.vocab_size, hidden=8).eval()
    task.start_epoch(0)
    l0, n0 = task.train_step(lm, 0, 0)
    l1, n1 = task.train_step(lm, 0, 1)
    x = torch.cat([task.batches.batch(0)[0], task.batches.batch(1)[0]])
    y = torch.cat([task.batches.batch(0)[1], task.batches.batch(1)[1]])
    logits, _ = lm(x)
    whole = torch.nn.functional.cross_entropy(logits.reshape(-1, tok.vocab_size), y.reshape(-1))
    torch.testing.assert_close((l0 * n0 + l1 * n1) / (n0 + n1), whole)


EVAL_TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


def test_periodic_evaluation_scores_the_first_eval_tokens():
    """full=False (while training) scores the validation text's first eval_tokens tokens, as a
    task whose whole validation text is that prefix would; full=True all of it."""
    tok = build_tokenizer("char", EVAL_TEXT)
    cpu = torch.device("cpu")
    val = EVAL_TEXT[:300]
    s = {**DEFAULTS, "batch_size": 4, "seq_len": 8, "eval_tokens": 120}
    task = LMTask(tok, EVAL_TEXT, val, "abc", s, Dist(), cpu)
    prefix = LMTask(tok, EVAL_TEXT, val[:120], "abc", s, Dist(), cpu)
    torch.manual_seed(0)
    model = LanguageModel(tok.vocab_size, embed=8, hidden=16).eval()
    assert task.evaluate(model, "val", full=False) == prefix.evaluate(model, "val")
    assert task.evaluate(model, "val") != prefix.evaluate(model, "val")
    off = LMTask(tok, EVAL_TEXT, val, "abc", {**s, "eval_tokens": 0}, Dist(), cpu)
    assert off.evaluate(model, "val", full=False) == task.evaluate(model, "val")
