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

from .activations import tanh, tanh_
from .base import Cell, Params, State
from .matmul import linear, pack


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

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        i, f, g, o = (xp + self.recurrent(h, p)).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        return o * torch.tanh(c_new), c_new

    # ---- bptt: the same step into preallocated buffers, and its backward ---------------------
    # Memory: per step only c(t) is saved (h and x the engine keeps); the gates, 4H a step,
    # are recomputed in the backward from one product over all steps.
    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.hidden_size,),)  # c(t)

    def bptt_setup(self, p: Params) -> Params:
        w, b_ih, b_hh = p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")
        # z = W_ih x + (b_ih + b_hh) + W_hh h: both biases in one add for all steps
        b_x = None if b_ih is None else b_ih + b_hh
        return {"w_ih": p["weight_ih"], "b_x": b_x, "w": pack(w), "wT": pack(w.t().contiguous())}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        (c_new,) = saved
        z = linear(h_prev, q["w"], xp).view(-1, 4, self.hidden_size)  # z = xp + W_hh h
        _activate(z)  # a temporary: the backward recomputes it (memory)
        i, f, g, o = z.unbind(1)
        torch.mul(f, c, out=c_new).addcmul_(i, g)  # c' = f c + i g
        torch.mul(o, tanh(c_new), out=h)  # h' = o tanh(c')
        return h, c_new

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        (c,) = saved
        T, B, H = c.shape
        # the gates of every step again: z = xp + W_hh h(t-1) in one product, then activated
        act = linear(h_prev.reshape(T * B, H), q["w"], xp.view(T * B, 4 * H)).view(T, B, 4, H)
        i, f, g, o = _activate(act).unbind(2)
        tc = tanh(c)
        through_h = torch.addcmul(o, o * tc, tc, value=-1)  # dc += dh' o (1 - tanh(c')^2)
        # pre-activation gradient = dc (dh' for o) * k, k = (g, c(t-1), i, tanh(c')) * slope
        k = torch.addcmul(act, act, act, value=-1)  # a(1 - a); g - g^2 in the g block ...
        k[:, :, 2].add_(1).sub_(g)  # ... made 1 - g^2
        other = torch.stack([g, g, i, tc], dim=2)
        other[0, :, 1], other[1:, :, 1] = state0[1], c[:-1]
        k.mul_(other)
        dz = act.new_empty(T, B, 4, H)
        steps = (through_h, k[:, :, :3], k[:, :, 3], f, dz[:, :, :3], dz[:, :, 3],
                 dz.view(T, B, 4 * H))
        return steps, dz.view(T, B, 4 * H)

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        through_h, k_ifg, k_o, f, dz_ifg, dz_o, dz = step
        dh, dc = dstate
        torch.mul(dh, k_o, out=dz_o)  # do~
        dc.addcmul_(dh, through_h)  # dc = dc' + dh' o (1 - tanh(c')^2)
        torch.mul(dc.unsqueeze(1), k_ifg, out=dz_ifg)  # di~, df~, dg~
        dc.mul_(f)  # dc(t-1) = dc f
        return linear(dz, q["wT"], dh_ext), dc  # dh(t-1) = W_hh^T dz (+ the loss's part)


def _activate(z: Tensor) -> Tensor:
    """Gate pre-activations (..., 4, H) to i, f, g, o in place: sigmoid, tanh for g."""
    z[..., :2, :].sigmoid_()
    tanh_(z[..., 2, :])
    z[..., 3, :].sigmoid_()
    return z


CELLS = (LSTM,)
