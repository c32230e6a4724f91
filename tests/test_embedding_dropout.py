"""Embedding dropout: whole word types dropped per batch, the plain lookup when off."""

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.errors import UserError
from rnnkit.layers.dropout import embedding_dropout
from rnnkit.models.language_model import LanguageModel


def test_each_word_type_is_kept_or_dropped_everywhere_and_scaled():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 8)
    x = torch.randint(50, (30, 16))
    y = embedding_dropout(emb, x, 0.4, training=True)
    plain = emb(x)
    dropped = set()
    for word in x.unique().tolist():
        rows = y[x == word]
        kept = bool(rows.abs().sum() > 0)
        expected = plain[x == word] / 0.6 if kept else torch.zeros_like(rows)
        assert torch.allclose(rows, expected, atol=1e-6)
        dropped |= set() if kept else {word}
    assert 0 < len(dropped) < len(x.unique())
    # the gradient reaches only the kept rows, scaled as their values were
    y.sum().backward()
    g = emb.weight.grad
    for word in dropped:
        assert torch.equal(g[word], torch.zeros(8))


def test_off_in_eval_mode_or_at_zero():
    emb = torch.nn.Embedding(20, 4)
    x = torch.randint(20, (5, 3))
    assert torch.equal(embedding_dropout(emb, x, 0.5, training=False), emb(x))
    assert torch.equal(embedding_dropout(emb, x, 0.0, training=True), emb(x))
    torch.manual_seed(1)
    lm = LanguageModel(20, hidden=8, embed_dropout=0.3)
    ref = LanguageModel(20, hidden=8)
    ref.load_state_dict(lm.state_dict())
    lm.eval(), ref.eval()
    assert torch.equal(lm(x)[0], ref(x)[0])  # a trained model reads every word
    assert LanguageModel(**lm.config).embed_dropout == 0.3
    assert "embed_dropout" not in ref.config  # earlier configs unchanged
    with pytest.raises(UserError, match="embedding dropout"):
        LanguageModel(20, hidden=8, embed_dropout=1.0)


def test_the_lm_command_takes_it(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 200)
    out = tmp_path / "run"
    assert main(["train", "lm", "--text", str(text), "--tokenizer", "word", "--hidden", "16",
                 "--embed-dropout", "0.2", "--steps", "4", "--seq-len", "16", "--no-progress",
                 "--out", str(out)]) == 0
    import rnnkit

    assert rnnkit.load(out).model.config["embed_dropout"] == 0.2
    capsys.readouterr()
    assert main(["train", "lm", "--text", str(text), "--embed-dropout", "1.5", "--steps", "2",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "embedding dropout" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
