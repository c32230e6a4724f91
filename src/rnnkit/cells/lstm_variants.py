"""LSTM variants compared by Greff et al. 2015 ("LSTM: A Search Space Odyssey", deck 003).

Each keeps torch.nn.LSTM's layout: gate blocks stacked in ``weight_ih`` / ``weight_hh`` in the
order of ``gate_names``, two bias vectors. Writing u = dh' o (1 - tanh(c')^2) for the part of
dc' that comes through h' = o tanh(c'), every backward below starts from dc = dc' + u.

``lstm_peephole`` (Gers & Schmidhuber 2000): the gates also look at the cell through diagonal
weights p = ``weight_peephole`` (rows p_i, p_f, p_o); i and f read c(t-1), o reads c(t):
    i = sigm(W_i [x, h] + b_i + p_i c),  f = sigm(W_f [x, h] + b_f + p_f c)
    g = tanh(W_g [x, h] + b_g),           c' = f c + i g
    o = sigm(W_o [x, h] + b_o + p_o c'),  h' = o tanh(c')
  backward: do~ = dh' tanh(c') o(1-o),   dc = dc' + u + do~ p_o
    di~ = dc g i(1-i),  df~ = dc c f(1-f),  dg~ = dc i (1-g^2)
    dc(t-1) = dc f + di~ p_i + df~ p_f
    dp_i = sum_batch di~ c,  dp_f = sum_batch df~ c,  dp_o = sum_batch do~ c'

``lstm_cifg`` (coupled input and forget gate): i = 1 - f, gates f, g, o:
    c' = f c + (1 - f) g = g + f (c - g),   h' = o tanh(c')
  backward: df~ = dc (c - g) f(1-f),  dg~ = dc (1-f)(1-g^2),  do~ = dh' tanh(c') o(1-o),
    dc(t-1) = dc f

``lstm_nofg`` (no forget gate, the 1997 cell as deck 004 writes it), gates i, g, o:
    c' = c + i g,   h' = o tanh(c')
  backward: di~ = dc g i(1-i),  dg~ = dc i (1-g^2),  do~ = dh' tanh(c') o(1-o),  dc(t-1) = dc

In all three dh(t-1) = W_hh^T (the gate pre-activation gradients).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .base import Cell, Params, State
from .matmul import linear


def _sig_tanh_sig(z: Tensor, H: int) -> Tensor:
    """Activations of three gate blocks (sigmoid, tanh, sigmoid), as one tensor."""
    return torch.cat([torch.sigmoid(z[:, :H]), torch.tanh(z[:, H : 2 * H]),
                      torch.sigmoid(z[:, 2 * H :])], dim=1)


def _slopes(act: Tensor, H: int) -> Tensor:
    """Derivatives of the activations in ``_sig_tanh_sig``'s output: a(1-a) for the sigmoid
    blocks, 1 - g^2 for the tanh block (there g - g^2 + 1 - g)."""
    d = torch.addcmul(act, act, act, value=-1)
    d[:, H : 2 * H].add_(1).sub_(act[:, H : 2 * H])
    return d


def _through_h(dh: Tensor, dc: Tensor, o: Tensor, tc: Tensor) -> Tensor:
    """dc' + dh' o (1 - tanh(c')^2): the cell gradient including the path through h'."""
    u = dh * o
    return torch.addcmul(dc + u, u * tc, tc, value=-1)


class LSTMPeephole(Cell):
    """LSTM with peephole connections (Gers & Schmidhuber 2000), gate order i, f, g, o; the
    peephole weights are ``weight_peephole`` of shape (3, hidden) with rows p_i, p_f, p_o.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm_peephole", 3, 4)
        >>> cell.parameter_shapes()["weight_peephole"]
        (3, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> h, c = cell.step(torch.randn(2, 16), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape
        torch.Size([2, 4])
    """

    name: ClassVar[str] = "lstm_peephole"
    gates: ClassVar[int] = 4
    gate_names: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    num_states: ClassVar[int] = 2
    recurrent_extras: ClassVar[tuple[str, ...]] = ("weight_peephole",)

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight_peephole": (3, self.hidden_size)}

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        h, c = state
        B, H = h.shape
        pw = p["weight_peephole"]
        z = xp + self.recurrent(h, p)
        i_f = torch.sigmoid(torch.addcmul(z[:, : 2 * H].view(B, 2, H), pw[:2], c.unsqueeze(1)))
        i, f = i_f[:, 0], i_f[:, 1]
        g = torch.tanh(z[:, 2 * H : 3 * H])
        c_new = torch.addcmul(f * c, i, g)
        o = torch.sigmoid(torch.addcmul(z[:, 3 * H :], pw[2], c_new))
        tc = torch.tanh(c_new)
        return (o * tc, c_new), (i_f, g, o, c, c_new, tc)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        i_f, g, o, c, c_new, tc = saved
        dh, dc = dstate
        B, H = dh.shape
        pw = p["weight_peephole"]
        i, f = i_f[:, 0], i_f[:, 1]
        dz = dh.new_empty(B, 4, H)  # the gate pre-activation gradients, written in place
        do = torch.mul(dh * tc, torch.addcmul(o, o, o, value=-1), out=dz[:, 3])  # do~
        dc = _through_h(dh, dc, o, tc).addcmul_(do, pw[2])  # dc' + u + do~ p_o
        dif = dz[:, :2]  # (di~, df~) = dc (g, c) (i, f)(1 - (i, f))
        torch.mul(dc, g, out=dif[:, 0])
        torch.mul(dc, c, out=dif[:, 1])
        dif.mul_(torch.addcmul(i_f, i_f, i_f, value=-1))
        dg = torch.mul(dc, i, out=dz[:, 2])
        dg.addcmul_(dg * g, g, value=-1)  # dg~ = dc i (1 - g^2)
        dc_prev = torch.addcmul(dc * f, dif[:, 0], pw[0]).addcmul_(dif[:, 1], pw[1])
        dpeep = torch.cat([(dif * c.unsqueeze(1)).sum(0), (do * c_new).sum(0, keepdim=True)])
        dz = dz.view(B, 4 * H)
        return dz, dz, (linear(dz, p["weight_hh"].t()), dc_prev), {"weight_peephole": dpeep}


class LSTMCIFG(Cell):
    """LSTM with a coupled input-forget gate, i = 1 - f (gate order f, g, o).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm_cifg", 3, 4)
        >>> cell.parameter_shapes()["weight_hh"]
        (12, 4)
    """

    name: ClassVar[str] = "lstm_cifg"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("f", "g", "o")
    num_states: ClassVar[int] = 2

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        h, c = state
        H = self.hidden_size
        act = _sig_tanh_sig(xp + self.recurrent(h, p), H)
        f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H :]
        cg = c - g
        c_new = torch.addcmul(g, f, cg)
        tc = torch.tanh(c_new)
        return (o * tc, c_new), (act, cg, tc)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        act, cg, tc = saved
        dh, dc = dstate
        H = self.hidden_size
        f, o = act[:, :H], act[:, 2 * H :]
        dc = _through_h(dh, dc, o, tc)
        dz = torch.cat([dc * cg, dc - dc * f, dh * tc], dim=1).mul_(_slopes(act, H))
        return dz, dz, (linear(dz, p["weight_hh"].t()), dc * f), {}


class LSTMNoForget(Cell):
    """The LSTM without a forget gate, c(t) = c(t-1) + i g (gate order i, g, o).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm_nofg", 3, 4)
        >>> cell.gate_names, cell.keep_gates
        (('i', 'g', 'o'), ())
    """

    name: ClassVar[str] = "lstm_nofg"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("i", "g", "o")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = ()
    num_states: ClassVar[int] = 2

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        h, c = state
        H = self.hidden_size
        act = _sig_tanh_sig(xp + self.recurrent(h, p), H)
        i, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H :]
        c_new = torch.addcmul(c, i, g)
        tc = torch.tanh(c_new)
        return (o * tc, c_new), (act, tc)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        act, tc = saved
        dh, dc = dstate
        H = self.hidden_size
        i, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H :]
        dc = _through_h(dh, dc, o, tc)
        dz = torch.cat([dc * g, dc * i, dh * tc], dim=1).mul_(_slopes(act, H))
        return dz, dz, (linear(dz, p["weight_hh"].t()), dc), {}


CELLS = (LSTMPeephole, LSTMCIFG, LSTMNoForget)
