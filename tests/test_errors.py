"""Bad input to the layers gives a clear error that names the problem and the fix."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit

I, H = 4, 5


def raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


# ---- construction -----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"cell": "lstmm"}, r"unknown cell 'lstmm': choose one of .*lstm"),
    ({"cell": "lstm", "backend": "cuda"}, r"unknown backend 'cuda': choose one of auto, native"),
    ({"cell": "rnn_sigmoid", "backend": "native"},
     r"backend 'native' cannot run cell 'rnn_sigmoid': its backends are auto, bptt, autograd"),
    ({"cell": "lstm", "backend": "scan"}, r"backend 'scan' cannot run cell 'lstm'"),
    ({"cell": "lstm", "bidirectional": True, "fusion": "sum", "backend": "native"},
     r"'native' cannot run this layer: torch joins directions by concat only.*backend='auto'"),
    ({"cell": "gru", "bidirectional": True, "fusion": "mean"},
     r"unknown fusion 'mean': choose one of concat, sum, linear"),
    ({"cell": "lstm", "hidden_size": 0}, r"hidden_size must be a positive integer, got 0"),
    ({"cell": "lstm", "num_layers": 1.5}, r"num_layers must be a positive integer"),
    ({"cell": "lstm", "dropout": 1.5}, r"dropout must be in \[0, 1\]"),
    ({"cell": "lstm", "recurrent_dropout": 1.0}, r"recurrent_dropout must be in \[0, 1\)"),
    ({"cell": "lstm", "tbptt": -2}, r"tbptt must be a number of steps >= 0"),
    ({"cell": "lstm", "tbptt": 5, "bidirectional": True},
     r"bidirectional layer reads the whole sequence backwards: use tbptt=0 or bidirectional"),
])
def test_bad_construction(kwargs, match):
    kwargs = {"input_size": I, "hidden_size": H, **kwargs}
    raises(ValueError, match, rnnkit.Recurrent, **kwargs)


def test_bad_drop_in_arguments():
    raises(ValueError, r"Unknown nonlinearity 'gelu': choose 'tanh', 'relu'", rnnkit.RNN, I, H,
           1, "gelu")
    raises(ValueError, r"backend 'native' cannot run cell 'rnn_sigmoid'", rnnkit.RNN, I, H,
           nonlinearity="sigmoid", backend="native")
    raises(TypeError, r"multiple values for argument 'num_layers'", rnnkit.LSTM, I, H, 2,
           num_layers=3)


# ---- input --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (2, 7, 3, I)])
def test_wrong_input_rank(shape):
    raises(ValueError, r"input must be 3-D \(seq, batch, features\) or 2-D unbatched",
           rnnkit.LSTM(I, H), torch.randn(shape))
    raises(ValueError, r"input must be 3-D \(batch, seq, features\)",
           rnnkit.LSTM(I, H, batch_first=True), torch.randn(shape))


def test_input_not_a_tensor():
    raises(TypeError, r"input must be a Tensor or PackedSequence, got list", rnnkit.GRU(I, H),
           [[1.0] * I])


@pytest.mark.parametrize("shape", [(5, 2, 7), (5, 7)])
def test_wrong_feature_size(shape):
    raises(ValueError, r"input has 7 features \(last dimension\), but this layer was built with "
           r"input_size=4: reshape the input or build the layer with input_size=7",
           rnnkit.GRU(I, H), torch.randn(shape))


@pytest.mark.parametrize("cell", ["lstm", "gru", "nas", "mingru"])
@pytest.mark.parametrize("shape,what", [((0, 2, I), "time steps"), ((3, 0, I), "sequences"),
                                        ((0, I), "time steps")])
def test_empty_input(cell, shape, what):
    for backend in ("auto", "bptt", "autograd"):
        raises(ValueError, rf"input has no {what} .*: a recurrent layer needs at least one step",
               rnnkit.Recurrent(cell, I, H, backend=backend), torch.randn(shape))


def test_batch_first_confusion_is_caught_by_feature_size():
    layer = rnnkit.LSTM(I, H, batch_first=True)
    raises(ValueError, r"input has 3 features", layer, torch.randn(2, I, 3))


# ---- initial states ---------------------------------------------------------------------------
@pytest.mark.parametrize("hx_shape,match", [
    ((1, 3, H), r"h_0 has shape \(1, 3, 5\), expected \(2, 3, 5\) \(num_layers \* "
                r"num_directions, batch, hidden_size\)"),
    ((2, 2, H), r"h_0 has shape \(2, 2, 5\), expected \(2, 3, 5\)"),
    ((2, 3, 4), r"h_0 has shape \(2, 3, 4\), expected \(2, 3, 5\)"),
    ((2, H), r"h_0 has shape \(2, 5\), expected \(2, 3, 5\)"),
])
def test_wrong_state_shape(hx_shape, match):
    raises(ValueError, match, rnnkit.GRU(I, H, 2), torch.randn(6, 3, I), torch.zeros(hx_shape))


def test_wrong_cell_state_shape():
    h0, c0 = torch.zeros(1, 3, H), torch.zeros(1, 3, H + 1)
    raises(ValueError, r"c_0 has shape \(1, 3, 6\), expected \(1, 3, 5\)", rnnkit.LSTM(I, H),
           torch.randn(6, 3, I), (h0, c0))


def test_unbatched_input_needs_unbatched_state():
    raises(ValueError, r"h_0 has shape \(1, 1, 5\), expected \(1, 5\) \(num_layers \* "
           r"num_directions, hidden_size, unbatched as the input\)",
           rnnkit.GRU(I, H), torch.randn(6, I), torch.zeros(1, 1, H))


def test_lstm_given_only_h():
    raises(ValueError, r"cell 'lstm' takes hx=\(h_0, c_0\), got one tensor: pass a tuple "
           r"\(h_0, c_0\)", rnnkit.LSTM(I, H), torch.randn(6, 3, I), torch.zeros(1, 3, H))
    raises(ValueError, r"got a tuple of 1", rnnkit.LSTM(I, H), torch.randn(6, 3, I),
           (torch.zeros(1, 3, H),))


def test_gru_given_a_tuple():
    state = (torch.zeros(1, 3, H), torch.zeros(1, 3, H))
    raises(ValueError, r"cell 'gru' takes hx=h_0, got a tuple of 2: pass one tensor",
           rnnkit.GRU(I, H), torch.randn(6, 3, I), state)


def test_stateful_batch_change():
    layer = rnnkit.RNN(I, H, stateful=True)
    layer(torch.randn(4, 3, I))
    raises(ValueError, r"carries a state for batch size 3 but got a batch of 5: call "
           r"reset_state\(\)", layer, torch.randn(4, 5, I))


# ---- lengths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lengths,match", [
    (torch.tensor([6, 2]), r"lengths must have shape \(3,\), one per sequence in the batch, "
                           r"got \(2,\)"),
    (torch.tensor([[6, 2, 3]]), r"lengths must have shape \(3,\)"),
    (torch.tensor([6, 0, 3]), r"lengths must lie in 1\.\.6 \(the padded length\), got \[6, 0, 3\]"),
    ([6, 7, 3], r"lengths must lie in 1\.\.6"),
    (torch.tensor([6.0, 2.5, 3.0]), r"lengths must be integers .* got dtype torch\.float32"),
])
def test_bad_lengths(lengths, match):
    raises(ValueError, match, rnnkit.LSTM(I, H, backend="bptt"), torch.randn(6, 3, I),
           lengths=lengths)


def test_lengths_with_packed_sequence():
    packed = pack_padded_sequence(torch.randn(6, 2, I), torch.tensor([6, 3]))
    raises(ValueError, r"PackedSequence carries its own lengths: pass lengths=None",
           rnnkit.LSTM(I, H), packed, lengths=torch.tensor([6, 3]))


def test_native_cannot_run_tbptt_with_lengths():
    layer = rnnkit.GRU(I, H, backend="native", tbptt=2)
    layer(torch.randn(6, 2, I))  # without lengths it can
    raises(ValueError, r"'native' cannot run this call: tbptt together with lengths needs the "
           r"rnnkit engines; use backend='auto' or 'bptt'", layer, torch.randn(6, 2, I),
           lengths=torch.tensor([6, 3]))
