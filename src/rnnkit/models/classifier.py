"""The sequence classifier (deck 000's many-to-one: a sequence in, one label out).

The model reads x_1..x_T (token ids through an embedding, or numeric feature vectors through a
linear layer) with a recurrent stack of any cell, optionally bidirectional, into states
h_1..h_T (both directions concatenated), reduces them to one vector r (the *readout*) and
scores the classes:

    last:       r = h_T                          (bidirectional: [h_T forward; h_1 backward],
                                                  each direction's final state)
    mean:       r = 1/T sum_t h_t
    max:        r_j = max_t h_tj                 (Conneau et al. 2017)
    attention:  a = softmax_t(q . tanh(W h_t + b)),  r = sum_t a_t h_t   (a learned query q,
                                                  Yang et al. 2016)

    p(y | x) = softmax(W_o r + b_o)

In a padded batch each sequence has its own length T: the padded steps are masked out of every
readout (and the recurrent layer keeps each sequence's own final state), so a sequence is
classified the same alone or in any batch.

Layout: time-major, ``x`` (T, B) ids or (T, B, F) features with ``lengths`` (B,).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..cells import available
from ..errors import UserError
from ..layers import Recurrent

READOUTS = ("last", "mean", "max", "attention")


class SequenceClassifier(nn.Module):
    """Many-to-one: a sequence of ``vocab_size`` tokens (or of ``input_features`` numbers a
    step, with ``vocab_size=None``) -> logits over ``num_classes``.

    ``config`` holds the constructor's arguments, so ``SequenceClassifier(**m.config)``
    rebuilds it. ``freeze_embedding`` keeps the input layer's weights as loaded (pretrained
    word vectors, ``rnnkit.data.vectors``).

    Example:
        >>> import torch
        >>> m = SequenceClassifier(30, 3, embed=8, hidden=16, readout="attention").eval()
        >>> x, lengths = torch.randint(30, (9, 4)), torch.tensor([9, 5, 2, 7])
        >>> m(x, lengths).shape                                   # (B, classes)
        torch.Size([4, 3])
        >>> alone = m(x[:2, 2:3], lengths[2:3])                   # item 2 on its own
        >>> torch.allclose(alone, m(x, lengths)[2:3], atol=1e-6)
        True
        >>> SequenceClassifier(None, 2, input_features=5, hidden=8)(torch.randn(6, 3, 5)).shape
        torch.Size([3, 2])
    """

    def __init__(self, vocab_size: int | None, num_classes: int, *,
                 input_features: int | None = None, cell: str = "lstm", embed: int = 128,
                 hidden: int = 128, layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0, readout: str = "max", freeze_embedding: bool = False,
                 backend: str = "auto"):
        super().__init__()
        _check(vocab_size, input_features, num_classes, cell, embed, hidden, layers, dropout,
               readout)
        self.config = {"vocab_size": vocab_size, "num_classes": num_classes,
                       "input_features": input_features, "cell": cell, "embed": embed,
                       "hidden": hidden, "layers": layers, "bidirectional": bidirectional,
                       "dropout": float(dropout), "readout": readout,
                       "freeze_embedding": freeze_embedding, "backend": backend}
        self.readout = readout
        self.input = (nn.Embedding(vocab_size, embed) if vocab_size is not None
                      else nn.Linear(input_features, embed))
        self.input.weight.requires_grad_(not freeze_embedding)  # pretrained vectors kept as is
        self.rnn = Recurrent(cell, embed, hidden, layers, dropout=dropout,
                             bidirectional=bidirectional, backend=backend)
        width = hidden * self.rnn.num_directions
        if readout == "attention":
            self.score = nn.Linear(width, width)  # W, b
            self.query = nn.Parameter(torch.randn(width) / width ** 0.5)  # q
        self.drop = nn.Dropout(dropout)
        self.output = nn.Linear(width, num_classes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x`` (T, B) ids or (T, B, F) features, ``lengths`` (B,) (None: all T steps) ->
        logits (B, C)."""
        return self.output(self.drop(self.represent(x, lengths)))

    def represent(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The readout r (B, D*H) of each sequence."""
        T, B = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        lengths = lengths.to(x.device)
        ragged = bool((lengths < T).any())  # else the engines need no mask (torch's: no packing)
        h, state = self.rnn(self.drop(self.input(x)), lengths=lengths if ragged else None)
        mask = (torch.arange(T, device=x.device)[:, None] < lengths[None]).unsqueeze(-1)
        if self.readout == "last":  # the top layer's final state in each direction
            final = state[0] if isinstance(state, tuple) else state
            return torch.cat(list(final[-self.rnn.num_directions:]), -1)
        if self.readout == "mean":
            return (h * mask).sum(0) / lengths[:, None].to(h.dtype)
        if self.readout == "max":
            return h.masked_fill(~mask, float("-inf")).amax(0)
        scores = torch.tanh(self.score(h)) @ self.query  # (T, B)
        a = scores.masked_fill(~mask[..., 0], float("-inf")).softmax(0)
        return (a.unsqueeze(-1) * h).sum(0)


def describe(config: dict) -> str:
    """A short line: ``bidirectional lstm, 1 x 128, max readout``."""
    bi = "bidirectional " if config["bidirectional"] else ""
    return (f"{bi}{config['cell']}, {config['layers']} x {config['hidden']}, "
            f"{config['readout']} readout")


def _check(vocab_size, input_features, num_classes, cell, embed, hidden, layers, dropout,
           readout) -> None:
    if (vocab_size is None) == (input_features is None):
        raise UserError("give the classifier either vocab_size (token ids in) or "
                        "input_features (numeric feature vectors in), not both or neither")
    if cell not in available():
        raise UserError(f"unknown cell {cell!r}; choose --cell from {', '.join(available())}")
    if readout not in READOUTS:
        raise UserError(f"unknown readout {readout!r}; choose --readout from "
                        f"{', '.join(READOUTS)}")
    for name, v in (("vocab size", vocab_size or 1), ("input features", input_features or 1),
                    ("--embed", embed), ("--hidden", hidden), ("--layers", layers)):
        if not isinstance(v, int) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {num_classes!r}")
    if not 0 <= dropout < 1:
        raise UserError(f"--dropout must be in [0, 1), got {dropout}")
