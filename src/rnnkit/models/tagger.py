"""The sequence tagger (deck 000's synced many-to-many: a label at every step).

The model reads x_1..x_T (token ids through an embedding, or numeric feature vectors through a
linear layer) with a recurrent stack of any cell, bidirectional by default, so the state at
step t has read the whole sequence (h_t = [h_t forward; h_t backward]), and scores the tags at
every step:

    p(y_t | x) = softmax(W_o h_t + b_o)

In a padded batch each sequence has its own length: the backward direction starts at each
sequence's own last step (the recurrent layer's ``lengths``), so a sequence is tagged the same
alone or in any batch; the scores at padded steps are there but mean nothing (the loss and
the metrics leave them out).

Layout: time-major, ``x`` (T, B) ids or (T, B, F) features with ``lengths`` (B,) ->
logits (T, B, tags).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..cells import available
from ..errors import UserError
from ..layers import Recurrent


class SequenceTagger(nn.Module):
    """Synced many-to-many: a sequence of ``vocab_size`` tokens (or of ``input_features``
    numbers a step, with ``vocab_size=None``) -> logits over ``num_tags`` at every step.

    ``config`` holds the constructor's arguments, so ``SequenceTagger(**m.config)`` rebuilds
    it. ``freeze_embedding`` keeps the input layer's weights as loaded (pretrained word
    vectors, ``rnnkit.data.vectors``).

    Example:
        >>> import torch
        >>> m = SequenceTagger(30, 5, embed=8, hidden=16).eval()
        >>> x, lengths = torch.randint(30, (9, 4)), torch.tensor([9, 5, 2, 7])
        >>> m(x, lengths).shape                                   # (T, B, tags)
        torch.Size([9, 4, 5])
        >>> alone = m(x[:2, 2:3], lengths[2:3])                   # item 2 on its own
        >>> torch.allclose(alone, m(x, lengths)[:2, 2:3], atol=1e-6)
        True
        >>> SequenceTagger(None, 3, input_features=4, hidden=8)(torch.randn(6, 2, 4)).shape
        torch.Size([6, 2, 3])
    """

    def __init__(self, vocab_size: int | None, num_tags: int, *,
                 input_features: int | None = None, cell: str = "lstm", embed: int = 64,
                 hidden: int = 128, layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0, freeze_embedding: bool = False, backend: str = "auto"):
        super().__init__()
        _check(vocab_size, input_features, num_tags, cell, embed, hidden, layers, dropout)
        self.config = {"vocab_size": vocab_size, "num_tags": num_tags,
                       "input_features": input_features, "cell": cell, "embed": embed,
                       "hidden": hidden, "layers": layers, "bidirectional": bidirectional,
                       "dropout": float(dropout), "freeze_embedding": freeze_embedding,
                       "backend": backend}
        self.input = (nn.Embedding(vocab_size, embed) if vocab_size is not None
                      else nn.Linear(input_features, embed))
        self.input.weight.requires_grad_(not freeze_embedding)  # pretrained vectors kept as is
        self.rnn = Recurrent(cell, embed, hidden, layers, dropout=dropout,
                             bidirectional=bidirectional, backend=backend)
        self.drop = nn.Dropout(dropout)
        self.output = nn.Linear(hidden * self.rnn.num_directions, num_tags)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x`` (T, B) ids or (T, B, F) features, ``lengths`` (B,) (None: all T steps) ->
        logits (T, B, tags)."""
        if lengths is not None:
            lengths = lengths.to(x.device)
            if not bool((lengths < x.shape[0]).any()):  # nothing padded: the engines need no mask
                lengths = None
        h, _ = self.rnn(self.drop(self.input(x)), lengths=lengths)
        return self.output(self.drop(h))


def describe(config: dict) -> str:
    """A short line: ``bidirectional lstm, 1 x 128``."""
    bi = "bidirectional " if config["bidirectional"] else ""
    return f"{bi}{config['cell']}, {config['layers']} x {config['hidden']}"


def _check(vocab_size, input_features, num_tags, cell, embed, hidden, layers, dropout) -> None:
    if (vocab_size is None) == (input_features is None):
        raise UserError("give the tagger either vocab_size (token ids in) or input_features "
                        "(numeric feature vectors in), not both or neither")
    if cell not in available():
        raise UserError(f"unknown cell {cell!r}; choose --cell from {', '.join(available())}")
    for name, v in (("vocab size", vocab_size or 1), ("input features", input_features or 1),
                    ("--embed", embed), ("--hidden", hidden), ("--layers", layers)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(num_tags, int) or num_tags < 2:
        raise UserError(f"a tagger needs at least 2 tags, got {num_tags!r}")
    if not 0 <= dropout < 1:
        raise UserError(f"--dropout must be in [0, 1), got {dropout}")

