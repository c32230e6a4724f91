"""Regularisers inside the recurrence: the masks of one call, drawn once, read by every engine.

* Recurrent dropout per sequence (Gal & Ghahramani 2016): W_hh reads m * h(t-1), where m
  (B, H) is 0 or 1/(1-p) per unit and per sequence, the same at every step of the call:
  z = W_ih x(t) + W_hh (m * h(t-1)) + b. The cell's other uses of h(t-1) (GRU's z h) read it
  whole. In eval: off.
* Zoneout (Krueger et al. 2016): per step and unit a state keeps its old value with
  probability p, h(t) = h~ + d (h(t-1) - h~), d ~ Bernoulli(p), and c(t) likewise with its own
  d (the LSTM's h~ = o tanh(c~) reads the new c~, not the zoned one). In eval: the expectation,
  d = p.

The engines get the masks as a ``Noise``; the layer draws them (``draw``), so every backend
sees the same ones for the same random state (the tests compare backends that way).

Example:
    >>> import torch
    >>> from rnnkit.engine.regularisers import draw
    >>> noise = draw(steps=5, batch=3, widths=(4, 4), like=torch.zeros(1),
    ...              recurrent_dropout=0.25, zoneout=(0.1, 0.1), training=True)
    >>> noise.recurrent.shape, [tuple(d.shape) for d in noise.zone]
    (torch.Size([3, 4]), [(5, 3, 4), (5, 3, 4)])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells import scratch
from . import compiled


@dataclass(frozen=True)
class Noise:
    """The masks of one layer and direction for one call (time-major, as the engines run).

    ``recurrent``: (B, H), m of recurrent dropout, or None. ``zone``: per state (h, then c),
    d of zoneout, (T, B, H) in the state's dtype (0/1 in training, p in eval), or None for a
    state without; empty if zoneout is off.
    """

    recurrent: Tensor | None = None
    zone: tuple[Tensor | None, ...] = ()

    @property
    def active(self) -> bool:
        return self.recurrent is not None or self.zoned

    @property
    def zoned(self) -> bool:
        return any(d is not None for d in self.zone)

    def steps(self, start: int, stop: int) -> Noise:
        """The masks of steps [start, stop) (truncated BPTT runs a call chunk by chunk; the
        recurrent mask is the sequence's, kept whole)."""
        return Noise(self.recurrent, tuple(None if d is None else d[start:stop]
                                           for d in self.zone))


def draw(steps: int, batch: int, widths: tuple[int, ...], like: Tensor,
         recurrent_dropout: float, zoneout: tuple[float, ...], training: bool) -> Noise | None:
    """Fresh masks for one call of one layer and direction, or None when nothing applies.
    ``widths`` and ``zoneout``: the width and the zoneout rate of each state (h, then c)."""
    m = None
    if training and recurrent_dropout > 0:
        keep = 1 - recurrent_dropout
        m = like.new_empty(batch, widths[0]).bernoulli_(keep).div_(keep)
    zone: tuple[Tensor | None, ...] = ()
    if any(zoneout):
        zone = tuple(None if not rate else  # eval: the expectation
                     bernoulli(like, (steps, batch, w), rate) if training else
                     scratch.empty((steps, batch, w), like).fill_(rate)
                     for w, rate in zip(widths, zoneout))
    noise = Noise(m, zone)
    return noise if noise.active else None


def bernoulli(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """Bernoulli(p) draws, 0 or 1 in ``like``'s dtype and device: where the compiled loops run,
    their hash (~8x torch's speed) seeded from torch's generator, into a pooled buffer (a fresh
    one costs more in page faults than the draws)."""
    ops = compiled.usable(like)
    if ops is None:
        return like.new_empty(shape).bernoulli_(p)
    out = scratch.empty(shape, like)
    ops.bernoulli_fill(out, p, int(torch.randint(2**62, ())))
    return out
