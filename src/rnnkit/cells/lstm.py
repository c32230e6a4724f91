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

from . import scratch
from .activations import tanh
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
    can_keep: ClassVar[bool] = True

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        i, f, g, o = (xp + self.recurrent(h, p)).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        return o * torch.tanh(c_new), c_new

    # ---- bptt: the same step into preallocated buffers, and its backward ---------------------
    # Memory: with ``recompute`` (the default) per step only c(t) is saved (h and x the engine
    # keeps); the gates, 4H a step, are recomputed in the backward from one product over all
    # steps. Without it the activated gates are kept too: no second product, 4H more a step.
    @property
    def backward_reads_xp(self) -> bool:  # type: ignore[override]
        return self.recompute

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        H = self.hidden_size
        return ((H,),) if self.recompute else ((H,), (4, H))  # c(t) (, i f g o)

    def bptt_setup(self, p: Params) -> Params:
        w, b_ih, b_hh = p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")
        # z = W_ih x + (b_ih + b_hh) + W_hh h: both biases in one add for all steps
        b_x = None if b_ih is None else b_ih + b_hh
        return {"w_ih": p["weight_ih"], "b_x": b_x, "w": pack(w), "wT": pack(w.t().contiguous())}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        c_new, *kept = saved
        z = linear(h_prev, q["w"], xp).view(-1, 4, self.hidden_size)  # z = xp + W_hh h
        i, f, g, o = _activate(z, kept[0] if kept else z).unbind(1)
        torch.mul(f, c, out=c_new).addcmul_(i, g)  # c' = f c + i g
        torch.mul(o, tanh(c_new), out=h)  # h' = o tanh(c')
        return h, c_new

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c, *kept = saved
        T, B, H = c.shape
        if kept:
            act = kept[0]  # the gates the forward kept (read only: a second backward reads them)
        else:  # the gates of every step again: z = xp + W_hh h(t-1) in one product, activated
            z = linear(h_prev.reshape(T * B, H), q["w"], xp.view(T * B, 4 * H))
            act = _activate(z.view(T, B, 4, H), z.view(T, B, 4, H))
        i, f, g, o = act.unbind(2)
        tc = tanh(c, scratch.empty((T, B, H), c))
        through_h = torch.mul(o, tc, out=scratch.empty((T, B, H), c))
        torch.addcmul(o, through_h, tc, value=-1, out=through_h)  # o (1 - tanh(c')^2)
        # pre-activation gradient = dc (dh' for o) * k: the slope of each gate's activation
        # times what it multiplied, block by block (no (T, B, 4, H) temporaries)
        k = scratch.empty((T, B, 4, H), c)
        k_i, k_f, k_g, k_o = k.unbind(2)
        torch.addcmul(i, i, i, value=-1, out=k_i).mul_(g)  # di~ = dc g i(1-i)
        torch.addcmul(f, f, f, value=-1, out=k_f)  # df~ = dc c(t-1) f(1-f)
        k_f[0].mul_(state0[1])
        k_f[1:].mul_(c[:-1])
        torch.mul(i, g, out=k_g)
        torch.addcmul(i, k_g, g, value=-1, out=k_g)  # dg~ = dc i (1 - g^2)
        torch.addcmul(o, o, o, value=-1, out=k_o).mul_(tc)  # do~ = dh' tanh(c') o(1-o)
        dz = scratch.empty((T, B, 4, H), c)
        steps = (through_h, k[:, :, :3], k_o, f, dz[:, :, :3], dz[:, :, 3],
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


def _activate(z: Tensor, out: Tensor) -> Tensor:
    """Gate pre-activations (..., 4, H) to i, f, g, o into ``out`` (z itself: in place):
    sigmoid, tanh for g."""
    torch.sigmoid(z[..., :2, :], out=out[..., :2, :])
    tanh(z[..., 2, :], out[..., 2, :])
    torch.sigmoid(z[..., 3, :], out=out[..., 3, :])
    return out


CELLS = (LSTM,)
