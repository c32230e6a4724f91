"""Variational ("locked") dropout for sequences (Gal & Ghahramani 2016), and embedding dropout.

One dropout mask per sequence, shared by every time step: the same units are dropped all along
the sequence, which regularises a recurrent model better than fresh noise at every step, and
costs a mask of (1, B, F) instead of (T, B, F) random numbers.

Embedding dropout (Gal & Ghahramani 2016, section 4; AWD-LSTM) drops whole word types: for a
batch, each row of the embedding matrix is kept or zeroed, so every occurrence of a dropped
word reads zeros, and the model cannot lean on any one word's vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence over time-major input (T, B, F).

    Example:
        >>> import torch
        >>> drop = LockedDropout(0.5).train()
        >>> y = drop(torch.ones(4, 2, 3))
        >>> bool((y == y[0]).all())   # every step dropped the same units
        True
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x[:1]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def embedding_dropout(embedding: nn.Embedding, x: Tensor, p: float, training: bool) -> Tensor:
    """``embedding(x)`` with each word type (row) dropped with probability ``p`` for the whole
    batch, the kept rows scaled by 1 / (1 - p); the plain lookup when not training or ``p`` 0.

    Example:
        >>> import torch
        >>> emb = torch.nn.Embedding(10, 4)
        >>> x = torch.tensor([[1, 2], [1, 3]])
        >>> y = embedding_dropout(emb, x, 0.5, training=True)
        >>> bool((y[0, 0] == y[1, 0]).all())   # both occurrences of word 1 alike
        True
    """
    if not training or p == 0:
        return embedding(x)
    w = embedding.weight
    keep = w.new_empty(w.shape[0], 1).bernoulli_(1 - p).div_(1 - p)
    return nn.functional.embedding(x, w * keep, embedding.padding_idx, embedding.max_norm,
                                   embedding.norm_type, embedding.scale_grad_by_freq,
                                   embedding.sparse)
