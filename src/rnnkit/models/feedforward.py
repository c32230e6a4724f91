"""Deck 002's contrast to the recurrent adder: a feed-forward network for n-bit inputs.

It reads all n bits of its input at once (binary addition: the 2 x 8 bits of two 8-bit
numbers) and writes all output bits at once (the 9 bits of the sum; parity: the 8 running
XORs). Its input size is fixed, so it cannot take a longer input at all, and it must learn
each output bit from examples of that bit: a table the size of the input space
(exponential in n), learned from a part of it, with errors on the rest. It learns from the
same training half of the inputs as the recurrent model (all of it for 8-bit inputs: 32,768
pairs for binary addition, 128 streams for parity), for a fixed number of Adam steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BitMLP(nn.Module):
    """Bits in, bits out: ``inputs -> hidden (tanh) -> outputs`` logits, one per output bit.

    Example:
        >>> import torch
        >>> x = torch.randint(0, 2, (256, 8)).float()
        >>> y = x.cumsum(1) % 2                              # running parity of 8 bits
        >>> mlp = BitMLP(8, 8, hidden=64).fit(x, y, steps=300)
        >>> mlp.predict(x).shape
        torch.Size([256, 8])
    """

    def __init__(self, inputs: int, outputs: int, hidden: int = 128):
        super().__init__()
        self.inputs, self.outputs = inputs, outputs
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def fit(self, x: Tensor, y: Tensor, steps: int = 2000, batch_size: int = 256,
            lr: float = 3e-3, seed: int = 0) -> BitMLP:
        """Adam on binary cross-entropy per output bit, minibatches drawn from ``(x, y)`` by a
        generator of its own (training's random state stays untouched)."""
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # the initial weights: also from the seed, not the run's
            torch.manual_seed(seed)
            self.net.apply(lambda m: m.reset_parameters() if isinstance(m, nn.Linear) else None)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        for _ in range(steps):
            rows = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g)
            loss = F.binary_cross_entropy_with_logits(self(x[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self.eval()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """0/1 bits, shaped like the targets."""
        if x.shape[-1] != self.inputs:
            raise ValueError(f"this network reads exactly {self.inputs} input bits, got "
                             f"{x.shape[-1]}: a feed-forward network's input size is fixed")
        return (self(x) > 0).long()
