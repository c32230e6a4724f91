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

from . import kernels, scratch
from .activations import tanh
from .base import RECURRENT_MASK, Cell, Params, State
from .matmul import linear


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
    description: ClassVar[str] = "LSTM, gates i, f, g, o as in torch.nn.LSTM"
    gates: ClassVar[int] = 4
    gate_names: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    num_states: ClassVar[int] = 2
    native_mode: ClassVar[str | None] = "LSTM"
    can_keep: ClassVar[bool] = True
    compiled_loop: ClassVar[bool] = True
    bptt_regularisers: ClassVar[tuple[str, ...]] = ("recurrent_dropout", "zoneout")

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        i, f, g, o = (xp + self.recurrent(h, p)).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        return o * torch.tanh(c_new), c_new

    # ---- bptt: the same step into preallocated buffers, and its backward ---------------------
    # Memory: per step the forward saves c(t) and the gates g, o; h(t) = o tanh(c(t)) is rebuilt
    # from them (the engine keeps x, not h). The backward recomputes i and f only, for all steps
    # in one product over half the rows of W: 3H a step for half the extra product. Without
    # ``recompute`` it saves all four gates (5H a step) and runs no extra product.
    saves_h: ClassVar[bool] = False
    backward_reads_xp: ClassVar[bool] = False  # it projects x onto the i, f rows itself
    kept_back: ClassVar[int] = 2  # the last gates saved even with recompute: g, o

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        H = self.hidden_size
        return ((H,), (self.kept_back if self.recompute else self.gates, H))  # c(t), (i f) g o

    def bptt_setup(self, p: Params) -> Params:
        w, b_ih, b_hh, H = p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), self.hidden_size
        # z = W_ih x + (b_ih + b_hh) + W_hh h: both biases in one add for all steps
        b_x = None if b_ih is None else b_ih + b_hh
        # the rows of the gates the backward recomputes (i, f)
        front = (self.gates - self.kept_back) * H
        q = {"w_ih": p["weight_ih"], "b_x": b_x, "w_front": w[:front]}
        return {**q, **self.recurrent_weights(w=w)}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        c_new, kept = saved
        z = linear(self.dropped(h_prev, q), q["w"], xp).view(-1, 4, self.hidden_size)  # xp + W h
        gates = kept if not self.recompute else z  # i and f: kept, or in place
        _activate(z, gates[:, :2], kept[:, -2:])
        (i, f), (g, o) = gates[:, :2].unbind(1), kept[:, -2:].unbind(1)
        torch.mul(f, c, out=c_new).addcmul_(i, g)  # c' = f c + i g
        torch.mul(o, tanh(c_new), out=h)  # h' = o tanh(c')
        return h, c_new

    def hidden_states(self, saved: list[Tensor], state0: State, mask: Tensor | None,
                      q: Params) -> Tensor:
        c, kept = saved
        o = kept[:, :, -1]
        if self.recompute:  # h(t-1) beside x: the front gates' recompute is one product over
            # [x, h(t-1)], and so are dW_ih and dW_hh together (engine/bptt.py)
            T, B, H = c.shape
            x = q["x"]
            xh = q["xh"] = scratch.empty((T, B, x.shape[-1] + H), c)
            xh[..., : x.shape[-1]] = x
            h = xh[..., x.shape[-1] :]
        else:
            h = scratch.empty(c.shape, c)  # h(t-1) of step t
        if q.get("hs") is not None:  # kept by the engine (zoneout: not o tanh(c(t)))
            h.copy_(q["hs"][:-1])
        else:
            h[0] = state0[0]
            tanh(c[:-1], h[1:]).mul_(o[:-1])  # h(t) = o tanh(c(t))
        if mask is not None and q.get("hs") is None:  # a masked-out step carried h(t-1)
            for t, m in enumerate(mask[:-1].unsqueeze(-1).unbind(0)):
                torch.where(m, h[t + 1], h[t], out=h[t + 1])
        if self.recompute and q.get(RECURRENT_MASK) is not None:
            h.mul_(q[RECURRENT_MASK])  # xh = [x, m h(t-1)]: what W_ih, W_hh read
        return h

    def _front_gates(self, saved: list[Tensor], h_prev: Tensor, q: Params) -> Tensor:
        """The gates not kept with ``recompute`` (the LSTM's i and f) of every step, (T, B, F,
        H): the kept ones, or their pre-activations again, [W_ih W_hh] [x, h(t-1)] + b over
        their rows (one product)."""
        kept, F = saved[1], self.gates - self.kept_back
        if not self.recompute:
            return kept[:, :, :F]
        T, B, H = h_prev.shape
        xh = q["xh"]  # [x, h(t-1)] (hidden_states)
        w = torch.cat([q["w_ih"][: F * H], q["w_front"]], dim=1)
        b = None if q["b_x"] is None else q["b_x"][: F * H]
        return linear(xh.view(T * B, -1), w, bias=b).view(T, B, F, H)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c, kept = saved
        T, B, H = c.shape
        act = scratch.empty((T, B, 4, H), c)  # i f g o (a copy: a retained graph reads kept)
        act[:, :, :2] = self._front_gates(saved, h_prev, q)
        if self.recompute:
            act[:, :, :2].sigmoid_()
        act[:, :, 2:] = kept[:, :, -2:]
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
        return self.recurrent_backward(dz, q, dh_ext), dc  # dh(t-1) = W_hh^T dz (+ the loss's)

    # ---- the same two loops compiled (engine/loops.cpp), where they can run ------------------
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        c, kept = saved
        kernels.ops().lstm_forward(xp, q["w"], hs, c, state[1], kept, mask,
                                    q.get(RECURRENT_MASK), *q.get("zone", ()))
        return hs[-1], c[-1]

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        c, kept = saved
        T, B, H = c.shape
        dz = scratch.empty((T, B, self.gates * H), c)
        q["db"] = None if q["b_x"] is None else c.new_empty(self.gates * H)  # summed by the loop
        self._backward_loop(self._front_gates(saved, h_prev, q), kept[:, :, -self.kept_back :],
                            c, state0[1], q, dz, dhseq, dstate, mask)
        return dz, dstate

    def _backward_loop(self, front: Tensor, back: Tensor, c: Tensor, c0: Tensor, q: Params,
                       dz: Tensor, dhseq: Tensor, dstate: State, mask: Tensor | None) -> None:
        """The compiled backward loop of this cell (a variant calls its own): the front gates,
        the kept last ones, c; fills dz and q["db"], turns dstate into the first state's."""
        kernels.ops().lstm_backward(front, self.recompute, back, c, c0, q["w"], dz, dhseq,
                                     *dstate, q["db"], mask, q.get(RECURRENT_MASK),
                                     *q.get("zone", ()))


def _activate(z: Tensor, i_f: Tensor, g_o: Tensor) -> None:
    """Gate pre-activations z (B, 4, H) to i, f (sigmoid) into ``i_f`` and g (tanh), o
    (sigmoid) into ``g_o`` (either may be part of z itself: in place)."""
    torch.sigmoid(z[:, :2], out=i_f)
    tanh(z[:, 2], g_o[:, 0])
    torch.sigmoid(z[:, 3], out=g_o[:, 1])


CELLS = (LSTM,)
