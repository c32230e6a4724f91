"""Variational ("locked") dropout for sequences (Gal & Ghahramani 2016).

One dropout mask per sequence, shared by every time step: the same units are dropped all along
the sequence, which regularises a recurrent model better than fresh noise at every step, and
costs a mask of (1, B, F) instead of (T, B, F) random numbers.
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
