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

bptt runs all three on the LSTM's buffered path (cells/lstm.py): per step c(t) and the last
gates (g and o; o alone without a forget gate) are saved, and h(t) = o tanh(c(t)) is rebuilt
from them (with ``recompute=False`` all the activated gates are saved, and nothing is
recomputed); the backward recomputes the front gates of every step from one product over their
rows and folds each backward line above into a per-step coefficient, so a backward step is
the LSTM's handful of ops:
    do~ = dh' k_o,  dc = dc' + dh' k_h,  (the other gates)~ = dc k,  dc(t-1) = dc k_c
with k_h = o (1 - tanh(c')^2) (+ k_o p_o) and k_c = f (+ k_i p_i + k_f p_f; 1 without f).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from . import kernels, scratch
from .activations import tanh
from .base import RECURRENT_MASK, Params, State
from .lstm import LSTM
from .matmul import linear


def _slopes(act: Tensor, g: int) -> Tensor:
    """Activation derivatives of gates (T, B, G, H): a(1-a), and 1 - g^2 for the tanh block g
    (there g - g^2 + 1 - g)."""
    k = torch.addcmul(act, act, act, value=-1, out=scratch.empty(act.shape, act))
    k[:, :, g].add_(1).sub_(act[:, :, g])
    return k


def _shifted(c: Tensor, c0: Tensor) -> Tensor:
    """c(t-1) for every step, from c(0) .. c(T-1) = c0, c[:-1]."""
    return torch.cat([c0.unsqueeze(0), c[:-1]])


def _through_h(o: Tensor, tc: Tensor) -> Tensor:
    """o (1 - tanh(c')^2): the part of dc that comes through h' = o tanh(c'), per unit dh'."""
    return torch.addcmul(o, o * tc, tc, value=-1)


class _BufferedVariant(LSTM):
    """What the variants share with the LSTM on the bptt path: bptt_setup (both biases folded
    into the input projection), the saved layout (c and the last gates; h rebuilt as o tanh(c);
    the front gates recomputed) and the backward step."""

    native_mode: ClassVar[str | None] = None  # torch has no kernel for these
    compiled_variant: ClassVar[int] = 0  # the variant in engine/loops.cpp
    bptt_regularisers: ClassVar[tuple[str, ...]] = ("recurrent_dropout",)
    tanh_gate: ClassVar[int] = 2  # where g sits among the gates

    def _gates_out(self, z: Tensor, saved: list[Tensor]) -> Tensor:
        """Where a step writes its activated gates: the kept slot (all gates kept), else z
        (then ``_keep_back`` copies the last ones)."""
        return z if self.recompute else saved[1]

    def _keep_back(self, gates: Tensor, saved: list[Tensor]) -> None:
        if self.recompute:
            saved[1].copy_(gates[:, -self.kept_back :])

    def _activated(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                   q: Params) -> Tensor:
        """The activated gates of every step, (T, B, G, H): those the forward kept (read
        only), else the front ones recomputed (``_front_gates``, ``_front_extra``) beside the
        kept last ones, in a new buffer."""
        c, kept = saved
        if not self.recompute:
            return kept
        T, B, H = c.shape
        F = self.gates - self.kept_back
        act = scratch.empty((T, B, self.gates, H), c)
        act[:, :, :F] = self._front_gates(saved, h_prev, q)
        self._front_extra(act[:, :, :F], _shifted(c, state0[1]), q)
        for k, z in enumerate(act[:, :, :F].unbind(2)):  # g's tanh, the others' sigmoid
            if k == self.tanh_gate:
                tanh(z, z)
            else:
                z.sigmoid_()
        act[:, :, F:] = kept
        return act

    def _front_extra(self, z: Tensor, c_prev: Tensor, q: Params) -> None:
        """What the front gates' pre-activations add besides W [x, h] + b (peepholes)."""

    @staticmethod
    def _steps(through_h: Tensor, k: Tensor,
               k_c: Tensor | None) -> tuple[tuple[Tensor, ...], Tensor]:
        """``backward_prepare``'s result for ``backward_into``: k holds the coefficients of
        each gate (the output gate last), k_c that of dc(t-1) (None: 1)."""
        T, B, G, H = k.shape
        dz = scratch.empty((T, B, G, H), k)
        flat = dz.view(T, B, G * H)
        coef = (through_h, k[:, :, :-1], k[:, :, -1], *(() if k_c is None else (k_c,)))
        return (*coef, dz[:, :, :-1], dz[:, :, -1], flat), flat

    # the two loops compiled (engine/loops.cpp), each row written per variant
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        c, kept = saved
        kernels.ops().variant_forward(xp, q["w"], q.get("peep"), self.compiled_variant, hs, c,
                                       state[1], kept, mask, q.get(RECURRENT_MASK))
        return hs[-1], c[-1]

    def _backward_loop(self, front: Tensor, back: Tensor, c: Tensor, c0: Tensor, q: Params,
                       dz: Tensor, dhseq: Tensor, dstate: State, mask: Tensor | None) -> None:
        kernels.ops().variant_backward(front, self.recompute, back, q.get("peep"),
                                        self.compiled_variant, c, c0, q["w"], dz, dhseq, *dstate,
                                        q.get("dpeep"), q["db"], mask, q.get(RECURRENT_MASK))


class LSTMPeephole(_BufferedVariant):
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
    description: ClassVar[str] = "LSTM with peephole connections (Gers & Schmidhuber 2000)"
    compiled_variant: ClassVar[int] = 1
    recurrent_extras: ClassVar[tuple[str, ...]] = ("weight_peephole",)

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight_peephole": (3, self.hidden_size)}

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        p_i, p_f, p_o = p["weight_peephole"]
        z_i, z_f, z_g, z_o = (xp + self.recurrent(h, p)).chunk(4, dim=1)
        i, f, g = torch.sigmoid(z_i + p_i * c), torch.sigmoid(z_f + p_f * c), torch.tanh(z_g)
        c_new = f * c + i * g
        o = torch.sigmoid(z_o + p_o * c_new)
        return o * torch.tanh(c_new), c_new

    # ---- bptt (buffered, see the module docstring) -------------------------------------------
    def bptt_setup(self, p: Params) -> Params:
        return {**super().bptt_setup(p), "peep": p["weight_peephole"]}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        c_new = saved[0]
        pw = q["peep"]
        z = linear(self.dropped(h_prev, q), q["w"], xp).view(-1, 4, self.hidden_size)
        a = self._gates_out(z, saved)
        torch.addcmul(z[:, :2], pw[:2], c.unsqueeze(1), out=a[:, :2]).sigmoid_()  # i, f see c
        i, f, g, o = a.unbind(1)
        torch.mul(f, c, out=c_new).addcmul_(i, tanh(z[:, 2], g))  # c' = f c + i g
        torch.addcmul(z[:, 3], pw[2], c_new, out=o).sigmoid_()  # o looks at c'
        tanh(c_new, h).mul_(o)  # h' = o tanh(c')
        self._keep_back(a, saved)
        return h, c_new

    def _front_extra(self, z: Tensor, c_prev: Tensor, q: Params) -> None:
        z.addcmul_(q["peep"][:2], c_prev.unsqueeze(2))  # i, f look at c(t-1)

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        q["dpeep"] = saved[0].new_empty(3, self.hidden_size)  # summed by the loop, row by row
        return super().backward_compiled(saved, xp, h_prev, state0, q, dhseq, dstate, mask)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c = saved[0]
        pw = q["peep"]
        c_prev = _shifted(c, state0[1])
        z = self._activated(saved, xp, h_prev, state0, q)
        i, f, g, o = z.unbind(2)
        tc = tanh(c)
        k = _slopes(z, 2)
        k_i, k_f, k_g, k_o = k.unbind(2)
        k_i.mul_(g)  # di~ = dc g i(1-i)
        k_f.mul_(c_prev)  # df~ = dc c f(1-f)
        k_g.mul_(i)  # dg~ = dc i (1-g^2)
        k_o.mul_(tc)  # do~ = dh' tanh(c') o(1-o)
        through_h = _through_h(o, tc).addcmul_(k_o, pw[2])  # + do~ p_o
        k_c = torch.addcmul(f, k_i, pw[0]).addcmul_(k_f, pw[1])  # dc(t-1) = dc k_c
        q["c_prev"], q["c"] = c_prev, c  # for the peephole gradients in backward_finish
        return self._steps(through_h, k, k_c)

    def backward_finish(self, dz: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if "dpeep" in q:  # the compiled loop summed them
            return dz, dz, {"weight_peephole": q["dpeep"]}
        T, B, _ = dz.shape
        d = dz.view(T * B, 4, self.hidden_size)
        c_prev, c = q["c_prev"].view(T * B, 1, -1), q["c"].view(T * B, -1)
        d_if = (d[:, :2] * c_prev).sum(0)  # dp_i, dp_f: sum di~ c, df~ c
        d_o = (d[:, 3] * c).sum(0, keepdim=True)  # dp_o: sum do~ c'
        return dz, dz, {"weight_peephole": torch.cat([d_if, d_o])}


class _ThreeGates(_BufferedVariant):
    """Gates a, g, o (a: the forget gate of ``lstm_cifg``, the input gate of ``lstm_nofg``);
    a subclass gives the cell update c' from a, g, c."""

    gates: ClassVar[int] = 3
    tanh_gate: ClassVar[int] = 1

    def new_cell(self, a: Tensor, g: Tensor, c: Tensor) -> Tensor:
        """c' as the deck writes it (differentiated by autograd)."""
        raise NotImplementedError

    def new_cell_into(self, a: Tensor, g: Tensor, c: Tensor, out: Tensor) -> None:
        """The same c', written into ``out`` in as few ops as possible."""
        raise NotImplementedError

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        z_a, z_g, z_o = (xp + self.recurrent(h, p)).chunk(3, dim=1)
        a, g, o = torch.sigmoid(z_a), torch.tanh(z_g), torch.sigmoid(z_o)
        c_new = self.new_cell(a, g, c)
        return o * torch.tanh(c_new), c_new

    # ---- bptt (buffered, see the module docstring) -------------------------------------------
    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        c_new = saved[0]
        z = linear(self.dropped(h_prev, q), q["w"], xp).view(-1, 3, self.hidden_size)
        out = self._gates_out(z, saved)
        a, g, o = out.unbind(1)
        torch.sigmoid(z[:, ::2], out=out[:, ::2])  # a and o in one op
        self.new_cell_into(a, tanh(z[:, 1], g), c, c_new)
        tanh(c_new, h).mul_(o)  # h' = o tanh(c')
        self._keep_back(out, saved)
        return h, c_new


class LSTMCIFG(_ThreeGates):
    """LSTM with a coupled input-forget gate, i = 1 - f (gate order f, g, o).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm_cifg", 3, 4)
        >>> cell.parameter_shapes()["weight_hh"]
        (12, 4)
    """

    name: ClassVar[str] = "lstm_cifg"
    description: ClassVar[str] = "LSTM with a coupled input-forget gate, i = 1 - f"
    compiled_variant: ClassVar[int] = 2
    gate_names: ClassVar[tuple[str, ...]] = ("f", "g", "o")

    def new_cell(self, a: Tensor, g: Tensor, c: Tensor) -> Tensor:
        return a * c + (1 - a) * g  # i = 1 - f

    def new_cell_into(self, a: Tensor, g: Tensor, c: Tensor, out: Tensor) -> None:
        torch.lerp(g, c, a, out=out)  # c' = g + f (c - g)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c = saved[0]
        act = self._activated(saved, xp, h_prev, state0, q)
        f, g, o = act.unbind(2)
        tc = tanh(c)
        k = _slopes(act, 1)
        k_f, k_g, k_o = k.unbind(2)
        k_f.mul_(_shifted(c, state0[1]).sub_(g))  # df~ = dc (c - g) f(1-f)
        k_g.addcmul_(k_g, f, value=-1)  # dg~ = dc (1-f)(1-g^2)
        k_o.mul_(tc)  # do~ = dh' tanh(c') o(1-o)
        return self._steps(_through_h(o, tc), k, f)


class LSTMNoForget(_ThreeGates):
    """The LSTM without a forget gate, c(t) = c(t-1) + i g (gate order i, g, o).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm_nofg", 3, 4)
        >>> cell.gate_names, cell.keep_gates
        (('i', 'g', 'o'), ())
    """

    name: ClassVar[str] = "lstm_nofg"
    description: ClassVar[str] = "LSTM without a forget gate, c(t) = c(t-1) + i g"
    kept_back: ClassVar[int] = 1  # o only: its autograd loop keeps less (no f), 0.5x of it
    compiled_variant: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("i", "g", "o")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = ()

    def new_cell(self, a: Tensor, g: Tensor, c: Tensor) -> Tensor:
        return c + a * g  # deck 004: no forget gate

    def new_cell_into(self, a: Tensor, g: Tensor, c: Tensor, out: Tensor) -> None:
        torch.addcmul(c, a, g, out=out)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c = saved[0]
        act = self._activated(saved, xp, h_prev, state0, q)
        i, g, o = act.unbind(2)
        tc = tanh(c)
        k = _slopes(act, 1)
        k_i, k_g, k_o = k.unbind(2)
        k_i.mul_(g)  # di~ = dc g i(1-i)
        k_g.mul_(i)  # dg~ = dc i (1-g^2)
        k_o.mul_(tc)  # do~ = dh' tanh(c') o(1-o)
        return self._steps(_through_h(o, tc), k, None)  # dc(t-1) = dc: no coefficient

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        through_h, k_ig, k_o, dz_ig, dz_o, dz = step
        dh, dc = dstate
        torch.mul(dh, k_o, out=dz_o)  # do~
        dc.addcmul_(dh, through_h)  # dc = dc' + u
        torch.mul(dc.unsqueeze(1), k_ig, out=dz_ig)  # di~, dg~
        return self.recurrent_backward(dz, q, dh_ext), dc  # dc(t-1) = dc


CELLS = (LSTMPeephole, LSTMCIFG, LSTMNoForget)
