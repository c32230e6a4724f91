"""Scoring text: against cross-entropy computed by hand, chunk sizes, closed forms."""

import doctest
import math

import pytest
import torch
from torch import nn

import rnnkit.models.generate
import rnnkit.models.scoring
from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.generate import start_token_id
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.scoring import score, total_nats

TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 4


class Bigram(nn.Module):
    """P(next | current) = softmax(table[current]): its log-likelihood is a sum we can write."""

    def __init__(self, V):
        super().__init__()
        self.table = nn.Parameter(torch.randn(V, V))

    def forward(self, x, state=None):
        return self.table[x], state


def test_total_nats_equals_the_hand_written_sum():
    torch.manual_seed(0)
    V = 6
    m = Bigram(V)
    ids = torch.randint(V, (50,)).tolist()
    logp = m.table.detach().log_softmax(-1)
    by_hand = -logp[3, ids[0]] - sum(logp[a, b] for a, b in zip(ids[:-1], ids[1:]))
    assert total_nats(m, ids, start_id=3, chunk=7) == pytest.approx(float(by_hand), rel=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_score_equals_full_sequence_cross_entropy(cell):
    torch.manual_seed(1)
    tok = build_tokenizer("char", TEXT)
    m = LanguageModel(tok.vocab_size, cell=cell, hidden=16, layers=2)
    m.train()  # score must switch dropout etc. off and restore the mode
    s = score(m, tok, TEXT, chunk=13)
    assert m.training
    ids = torch.tensor([start_token_id(tok)] + tok.encode(TEXT))
    with torch.no_grad():
        logits, _ = m.eval()(ids[:-1].unsqueeze(1))  # one pass over the whole text
        nats = nn.functional.cross_entropy(logits[:, 0], ids[1:], reduction="sum").item()
    assert s["tokens"] == len(TEXT) and s["chars"] == len(TEXT)
    assert s["loss"] == pytest.approx(nats / len(TEXT), rel=1e-5)
    assert s["perplexity"] == pytest.approx(math.exp(nats / len(TEXT)), rel=1e-5)
    assert s["bpc"] == pytest.approx(nats / math.log(2) / len(TEXT), rel=1e-5)


def test_chunked_equals_unchunked():
    torch.manual_seed(2)
    m = LanguageModel(9, hidden=12, layers=2)
    ids = torch.randint(9, (301,)).tolist()
    whole = total_nats(m, ids, chunk=10_000)
    for chunk in (1, 7, 64, 300):
        assert total_nats(m, ids, chunk=chunk) == pytest.approx(whole, rel=1e-5)


@pytest.mark.parametrize("kind, vocab", [("char", None), ("word", 50), ("bpe", 280)])
def test_uniform_model_has_closed_form_bpc(kind, vocab):
    """Zero logits: every token costs ln V nats, so bpc = tokens ln V / ln 2 / chars."""
    tok = build_tokenizer(kind, TEXT, vocab)
    m = LanguageModel(tok.vocab_size, hidden=8)
    nn.init.zeros_(m.output.weight)
    nn.init.zeros_(m.output.bias)
    s = score(m, tok, TEXT)
    n = len(tok.encode(TEXT))
    V = tok.vocab_size
    assert s["tokens"] == n and s["chars"] == len(TEXT)
    assert s["loss"] == pytest.approx(math.log(V), rel=1e-5)
    assert s["bpc"] == pytest.approx(n * math.log(V) / math.log(2) / len(TEXT), rel=1e-5)


def test_empty_text_is_a_user_error():
    tok = build_tokenizer("char", "abc")
    with pytest.raises(UserError, match="empty"):
        score(LanguageModel(tok.vocab_size, hidden=4), tok, "")


@pytest.mark.parametrize("module", [rnnkit.models.generate, rnnkit.models.scoring])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0 and result.failed == 0
