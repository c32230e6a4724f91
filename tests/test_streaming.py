"""Streaming in chunks of 1, 7 and 64 steps equals one call over the whole sequence."""

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.api import Model
from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel
from rnnkit.streaming import Stream, TextStream

T = 150


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def _layers():
    torch.manual_seed(0)
    yield "rnnkit.LSTM", rnnkit.LSTM(5, 8, num_layers=2)
    yield "rnnkit.GRU batch_first", rnnkit.GRU(5, 8, batch_first=True)
    yield "rnnkit.RNN", rnnkit.RNN(5, 8, num_layers=2, nonlinearity="relu")
    yield "lstm_peephole bptt", rnnkit.Recurrent("lstm_peephole", 5, 8, backend="bptt")
    yield "mut1 autograd", rnnkit.Recurrent("mut1", 5, 8, num_layers=2, backend="autograd")
    yield "mingru scan", rnnkit.Recurrent("mingru", 5, 8, num_layers=2, backend="scan")
    yield "torch.nn.LSTM", nn.LSTM(5, 8, num_layers=2)


@pytest.mark.parametrize("name, layer", list(_layers()), ids=lambda v: v if isinstance(v, str)
                         else "")
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunks_equal_the_whole_sequence(name, layer, chunk):
    batch_first = getattr(layer, "batch_first", False)
    x = torch.randn(3, T, 5) if batch_first else torch.randn(T, 3, 5)
    layer.eval()
    with torch.no_grad():
        whole, final = layer(x)
    stream = Stream(layer)
    pieces = [stream(x[:, i:i + chunk] if batch_first else x[i:i + chunk])
              for i in range(0, T, chunk)]
    assert torch.allclose(torch.cat(pieces, 1 if batch_first else 0), whole, atol=1e-5), name
    final = final if isinstance(final, tuple) else (final,)
    carried = stream.state if isinstance(stream.state, tuple) else (stream.state,)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(carried, final))
    assert stream.steps == T
    stream.reset()
    assert stream.state is None and stream.steps == 0


def test_a_language_model_streams_text_as_scoring_the_whole_text():
    text = "the cat sat on the mat.\nthe dog sat on the log.\n" * 3
    tok = build_tokenizer("char", text)
    torch.manual_seed(1)
    lm = LanguageModel(tok.vocab_size, cell="gru", hidden=16, layers=2).eval()
    ids = [tok.encode("\n")[0], *tok.encode(text)]
    with torch.no_grad():
        logits, _ = lm(torch.tensor(ids).unsqueeze(1))
    expected = logits[:, 0].softmax(-1)  # row t: p(token t + 1 | tokens up to t)
    stream, at = Model(lm, tok).stream(), 0
    for piece in (text[:1], text[1:8], "", text[8:70], text[70:]):
        p = stream.feed(piece)
        at += len(piece)
        assert torch.allclose(p, expected[at], atol=1e-5)
    stream.reset()
    assert torch.allclose(stream.feed(text[:5]), expected[5], atol=1e-5)
    assert isinstance(stream, TextStream)


def test_a_bidirectional_net_cannot_stream():
    with pytest.raises(UserError, match="bidirectional"):
        Stream(rnnkit.LSTM(3, 4, bidirectional=True))
    with pytest.raises(UserError, match="at least one step"):
        Stream(rnnkit.GRU(3, 4))(torch.zeros(0, 2, 3))
