"""Long short-term memory (Hochreiter & Schmidhuber 1997; decks 001, 003), PyTorch gate order.

    i = sigm(W_ii x + W_hi h + b_i)        input gate
    f = sigm(W_if x + W_hf h + b_f)        forget gate
    g = tanh(W_ig x + W_hg h + b_g)        candidate cell state  (C~ in the decks)
    o = sigm(W_io x + W_ho h + b_o)        output gate
    c' = f * c + i * g
    h' = o * tanh(c')

Backward of one step, given dh' and dc' (chain rule through the lines above, bottom up):
    do = dh' tanh(c'),   dc = dc' + dh' o (1 - tanh(c')^2)
    di = dc g,  df = dc c,  dg = dc i,  dc(t-1) = dc f
    pre-activation gradients: di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)
    dh(t-1) = W_hh^T d(pre-activations)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .base import Cell, Params, State


class LSTM(Cell):
    """The LSTM cell, gate order i, f, g, o as in torch.nn.LSTM.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm", 3, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> h, c = cell.step(torch.randn(2, 16), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    name: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    gate_names: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    num_states: ClassVar[int] = 2
    native_mode: ClassVar[str | None] = "LSTM"

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        h, c = state
        H = self.hidden_size
        z = xp + self.recurrent(h, p)
        act = torch.cat([torch.sigmoid(z[:, : 2 * H]), torch.tanh(z[:, 2 * H : 3 * H]),
                         torch.sigmoid(z[:, 3 * H :])], dim=1)
        i, f, g, o = act.chunk(4, dim=1)
        c_new = f * c + i * g
        tc = torch.tanh(c_new)
        return (o * tc, c_new), (act, c, tc)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        act, c, tc = saved
        dh, dc = dstate
        i, f, g, o = act.chunk(4, dim=1)
        do = dh * tc
        dc = dc + dh * o * (1 - tc * tc)
        dz = torch.cat([dc * g * i * (1 - i), dc * c * f * (1 - f),
                        dc * i * (1 - g * g), do * o * (1 - o)], dim=1)
        return dz, dz, (dz @ p["weight_hh"], dc * f), {}


CELLS = (LSTM,)
