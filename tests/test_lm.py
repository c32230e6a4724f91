"""LanguageModel: shapes, config round trip, weight tying, state carry, against torch.nn."""

import pytest
import torch
from torch import nn

from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel, detach_state


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
