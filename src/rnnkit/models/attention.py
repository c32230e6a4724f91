"""Attention (deck 003): at each output step the decoder looks back at every encoder state.

The encoder's states h_1..h_S (the *memory*) are scored against the decoder's query q:

    Bahdanau (additive):   e_j = v^T tanh(W q + U h_j)          (Bahdanau, Cho, Bengio 2015)
    Luong dot:             e_j = q^T h_j                         (Luong, Pham, Manning 2015)
    Luong general:         e_j = q^T W h_j

then the alignment weights a_j = softmax_j(e_j) and the context vector c = sum_j a_j h_j.
Padded memory positions get e_j = -inf, so their weight is exactly 0: a padded batch attends
exactly as each sequence alone. ``prepare`` computes what depends on the memory alone once per
sequence (U h_j for Bahdanau, W h_j for general), not at every decoder step.

Shapes are batch-first inside attention: memory (B, S, M), queries (B, T, Q) or (B, Q).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

KINDS = ("bahdanau", "dot", "general")


class Attention(nn.Module):
    """Scores of one kind between decoder queries (``query_size``) and encoder states
    (``memory_size``); Bahdanau's hidden layer is ``attention_size`` wide.

    Example:
        >>> import torch
        >>> att = Attention("bahdanau", query_size=8, memory_size=6)
        >>> memory, mask = torch.randn(2, 5, 6), torch.tensor([[1, 1, 1, 0, 0], [1] * 5]).bool()
        >>> context, weights = att(torch.randn(2, 8), att.prepare(memory), memory, mask)
        >>> context.shape, weights.shape, weights[0, 3:].sum().item()
        (torch.Size([2, 6]), torch.Size([2, 5]), 0.0)
    """

    def __init__(self, kind: str, query_size: int, memory_size: int,
                 attention_size: int | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown attention {kind!r}; choose from {', '.join(KINDS)}")
        if kind == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs query and memory of one size, got "
                             f"{query_size} and {memory_size}")
        self.kind = kind
        if kind == "bahdanau":
            size = attention_size or query_size
            self.query_layer = nn.Linear(query_size, size, bias=False)  # W
            self.memory_layer = nn.Linear(memory_size, size)  # U (and the bias)
            self.v = nn.Linear(size, 1, bias=False)
        elif kind == "general":
            self.memory_layer = nn.Linear(memory_size, query_size, bias=False)  # W h_j

    def prepare(self, memory: Tensor) -> Tensor:
        """The memory's part of every score, once per sequence: U h_j, W h_j, or h_j."""
        return memory if self.kind == "dot" else self.memory_layer(memory)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """e (B, T, S) for queries (B, T, Q) against prepared keys (B, S, K)."""
        if self.kind == "bahdanau":
            q = self.query_layer(query).unsqueeze(2)  # (B, T, 1, A)
            return self.v(torch.tanh(q + keys.unsqueeze(1))).squeeze(-1)
        return torch.bmm(query, keys.transpose(1, 2))

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor,
                mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(context, weights) for a query (B, Q) -> ((B, M), (B, S)), or queries (B, T, Q) ->
        ((B, T, M), (B, T, S)); ``mask`` (B, S) is True where the memory is real."""
        single = query.dim() == 2
        q = query.unsqueeze(1) if single else query
        e = self.scores(q, keys)
        if mask is not None:
            e = e.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(e, dim=-1)
        context = torch.bmm(weights, memory)
        return (context.squeeze(1), weights.squeeze(1)) if single else (context, weights)
