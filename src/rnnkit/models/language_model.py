"""A recurrent language model: embedding, a recurrent stack of any cell, dropout, output layer.

Deck 003: the model reads tokens x_1..x_T and at each step t predicts a distribution over the
next token, y_t = softmax(W_hy h_t + b_y); training minimises the cross-entropy averaged over
the sequence. Weight tying (Press & Wolf 2017) shares the embedding matrix with the output
layer, which needs ``embed == hidden``.

Everything is time-major, as the data layer gives it: ``x`` (T, B) -> logits (T, B, V).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..cells import available
from ..errors import UserError
from ..layers import Recurrent
from ..layers.dropout import LockedDropout, embedding_dropout

State = Tensor | tuple[Tensor, ...]


class LanguageModel(nn.Module):
    """Next-token model over a vocabulary of ``vocab_size`` tokens.

    ``config`` holds the constructor's arguments (JSON-able), so ``LanguageModel(**m.config)``
    rebuilds the same architecture; checkpoints store it beside the weights.

    Example:
        >>> import torch
        >>> lm = LanguageModel(50, cell="gru", embed=16, hidden=32, layers=2)
        >>> logits, state = lm(torch.randint(50, (7, 3)))   # (T, B) token ids
        >>> logits.shape, state.shape
        (torch.Size([7, 3, 50]), torch.Size([2, 3, 32]))
        >>> LanguageModel(**lm.config).config == lm.config
        True
    """

    def __init__(self, vocab_size: int, *, cell: str = "lstm", embed: int | None = None,
                 hidden: int = 256, layers: int = 1, dropout: float = 0.0,
                 tie_weights: bool = False, backend: str = "auto", embed_dropout: float = 0.0,
                 **recurrent_kw: Any):
        super().__init__()
        embed = hidden if embed is None else embed
        _check(vocab_size, cell, embed, hidden, layers, dropout, tie_weights)
        if not 0 <= embed_dropout < 1:
            raise UserError(f"embedding dropout must be in [0, 1), got {embed_dropout}")
        self.config = {"vocab_size": vocab_size, "cell": cell, "embed": embed, "hidden": hidden,
                       "layers": layers, "dropout": float(dropout), "tie_weights": tie_weights,
                       "backend": backend, **recurrent_kw}
        if embed_dropout:  # only when used: earlier checkpoints' configs stay as they were
            self.config["embed_dropout"] = float(embed_dropout)
        self.embed_dropout = float(embed_dropout)
        self.embedding = nn.Embedding(vocab_size, embed)
        # on the embeddings and the last layer's output, one mask per sequence (variational)
        self.drop = LockedDropout(dropout)
        self.rnn = Recurrent(cell, embed, hidden, layers, dropout=dropout, backend=backend,
                             **recurrent_kw)
        self.output = nn.Linear(hidden, vocab_size)
        if tie_weights:
            self.output.weight = self.embedding.weight

    @property
    def vocab_size(self) -> int:
        return self.config["vocab_size"]

    def init_state(self, batch: int) -> State:
        """The zero state for ``batch`` sequences: ``h`` or ``(h, c)``, each (layers, B, H)."""
        p = self.output.weight
        h = p.new_zeros(self.rnn.num_layers, batch, self.rnn.hidden_size)
        return (h, h.clone()) if self.rnn.num_states == 2 else h

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``x`` (T, B) token ids, ``state`` as ``init_state`` gives (None: zeros) ->
        ``(logits (T, B, V), final state)``."""
        if x.dim() != 2:
            raise ValueError(f"x must be (T, B) token ids, got shape {tuple(x.shape)}")
        h = self.drop(embedding_dropout(self.embedding, x, self.embed_dropout, self.training))
        out, state = self.rnn(h, state)
        return self.output(self.drop(out)), state


def detach_state(state: State | None) -> State | None:
    """The state without its graph (truncated BPTT: gradients stop at the batch edge)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def _check(vocab_size, cell, embed, hidden, layers, dropout, tie_weights) -> None:
    for name, v in [("vocab_size", vocab_size), ("embed", embed), ("hidden", hidden),
                    ("layers", layers)]:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if cell not in available():
        raise UserError(f"unknown cell {cell!r}; choose --cell from {', '.join(available())}")
    if not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), got {dropout!r}; e.g. --dropout 0.1")
    if tie_weights and embed != hidden:
        raise UserError(f"weight tying shares the embedding ({embed} wide) with the output "
                        f"layer ({hidden} wide): give --embed {hidden} or turn tying off")
