"""The recurrent cell found by neural architecture search (Zoph & Le 2017, deck 003), with the
equations of TensorFlow's former ``NASCell`` (tf.contrib.rnn / tfa.rnn, without projection).

Eight blocks of hidden_size are read from x and from h; TensorFlow's split k is
x_k = W_ik x + b_ik and m_k = W_hk h + b_hk (torch-style: TensorFlow keeps one bias, on m):

    layer 1:  a0 = sigm(x0 + m0)   a1 = relu(x1 + m1)   a2 = sigm(x2 + m2)   a3 = relu(x3 * m3)
              a4 = tanh(x4 + m4)   a5 = sigm(x5 + m5)   a6 = tanh(x6 + m6)   a7 = sigm(x7 + m7)
    layer 2:  b0 = tanh(a0 a1)     b1 = tanh(a2 + a3)   b2 = tanh(a4 a5)     b3 = sigm(a6 + a7)
    cell:     e = tanh(b0 + c),    c' = e b1
    layer 3:  q = tanh(b2 + b3),   h' = tanh(c' q)

Note a3: the input and recurrent parts multiply, so here dxp and dhp differ.

**Block order.** The rows of ``weight_ih``/``weight_hh`` (and the biases) hold the blocks
sorted by activation: tanh (4, 6), sigmoid (0, 2, 5, 7), relu (1, 3), i.e. rows k*H:(k+1)*H hold
TensorFlow's split ``ORDER[k]``. Then each activation is one op over contiguous rows, and the
layer-2 pairs fall on stride-2 views: (a4, a0) times (a5, a1), and (a6, a2) plus (a7, a3).

**Backward** of one step, given dh' and dc' (bottom-up through the lines above):
    du = dh' (1 - h'^2),   dc = dc' + du q,   dq~ = du c' (1 - q^2)   (= db2 = db3)
    de~ = dc b1 (1 - e^2)  (= db0 = dc(t-1)),  db1 = dc e
    db0~ = db0 (1 - b0^2),  db1~ = db1 (1 - b1^2),  db2~ = db2 (1 - b2^2),  db3~ = db3 b3 (1 - b3)
    da0 = db0~ a1,  da1 = db0~ a0,  da4 = db2~ a5,  da5 = db2~ a4,  da2 = da3 = db1~,
    da6 = da7 = db3~;  then through each block's activation (a3's relu: [a3 > 0]);
    block 3's product: dx3 = da3~ m3,  dm3 = da3~ x3;   dh(t-1) = W_hh^T dm
Every pre-activation gradient is dh' or dc (= dc' + dh' (1 - h'^2) q) times a coefficient known
from the forward, so the bptt backward precomputes those for all steps and runs a few ops a step.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from . import kernels, scratch
from .activations import tanh_
from .base import Cell, Params, State
from .matmul import linear

ORDER = (4, 6, 0, 2, 5, 7, 1, 3)  # TensorFlow's split held by each row block, in order


class NAS(Cell):
    """The NAS cell (TensorFlow's ``NASCell`` equations), state (h, c); block order ``ORDER``.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("nas", 3, 4)
        >>> cell.parameter_shapes()["weight_hh"]
        (32, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> h, c = cell.step(torch.randn(2, 32), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    name: ClassVar[str] = "nas"
    description: ClassVar[str] = "NAS cell, found by architecture search (Zoph & Le 2017)"
    gates: ClassVar[int] = 8
    gate_names: ClassVar[tuple[str, ...]] = tuple(f"a{k}" for k in ORDER)
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = ()
    num_states: ClassVar[int] = 2
    compiled_loop: ClassVar[bool] = True

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        H = self.hidden_size
        hp = self.recurrent(h, p)
        z = xp[:, : 7 * H] + hp[:, : 7 * H]
        a = torch.cat([torch.tanh(z[:, : 2 * H]), torch.sigmoid(z[:, 2 * H : 6 * H]),
                       torch.relu(z[:, 6 * H :]), torch.relu(xp[:, 7 * H :] * hp[:, 7 * H :])], 1)
        a4, a6, a0, a2, a5, a7, a1, a3 = a.chunk(8, dim=1)
        b0, b1, b2, b3 = (torch.tanh(a0 * a1), torch.tanh(a2 + a3), torch.tanh(a4 * a5),
                          torch.sigmoid(a6 + a7))
        c_new = torch.tanh(b0 + c) * b1
        return torch.tanh(c_new * torch.tanh(b2 + b3)), c_new

    # ---- bptt: the same step into preallocated buffers, and its backward ---------------------
    # Memory: per step c(t) and the 8 pre-activations z are saved (h and x the engine keeps),
    # with or without ``recompute``: the autograd loop keeps about 38 H floats a step for this
    # cell (every node of its three layers), so x, h, c and z stay near a quarter of that
    # (0.26x at I = 64, H = 128), under the half that ``recompute`` promises, and recomputing z
    # (one product over 8 H rows and the input projection again) would cost 20 % of a
    # training step to bring it down to 0.06x. The backward recomputes only x3 = W_i3 x + b_i3.
    can_keep: ClassVar[bool] = True
    backward_reads_xp: ClassVar[bool] = False

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        H = self.hidden_size
        return ((H,), (8 * H,))  # c(t), the blocks' z

    def bptt_setup(self, p: Params) -> Params:
        w, w_ih, b_ih, b_hh = p["weight_hh"], p["weight_ih"], p.get("bias_ih"), p.get("bias_hh")
        H = self.hidden_size
        # xp (9 blocks) = [x_k + b_ik + b_hk for blocks 0-6, b_h3, x3]: its first 8 blocks are
        # what the step's product adds to W_hh h, which leaves m3 in block 7 for x3 m3
        w_x = torch.cat([w_ih[: 7 * H], w_ih.new_zeros(H, w_ih.shape[1]), w_ih[7 * H :]])
        b_x = None if b_ih is None else torch.cat([b_ih[: 7 * H] + b_hh[: 7 * H], b_hh[7 * H :],
                                                   b_ih[7 * H :]])
        x3 = {"w_x3": w_ih[7 * H :], "b_x3": None if b_ih is None else b_ih[7 * H :]}
        return {"w_ih": w_x, "b_x": b_x, **x3, **self.recurrent_weights(w=w), "work": None}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        c_new, kept = saved
        H = self.hidden_size
        z = linear(h_prev, q["w"]).add_(xp[:, : 8 * H])  # x + m in blocks 0-6, m3 in block 7
        kept.copy_(z)
        z[:, 7 * H :].mul_(xp[:, 8 * H :])  # x3 m3
        k0, k1 = _activate(z, H).view(-1, 2, 2, 2, H).unbind(3)  # (a4, a0, a5, a1), (a6, ...)
        b3, b2, b0, b1, b20, b31, tanhs = q["work"] or _work(q, h_prev)  # views of one buffer
        torch.mul(k0[:, 0], k0[:, 1], out=b20)  # (a4 a5, a0 a1)
        torch.add(k1[:, 0], k1[:, 1], out=b31)  # (a6 + a7, a2 + a3)
        b3.sigmoid_()
        tanh_(tanhs)  # b2, b0, b1
        torch.mul(tanh_(torch.add(b0, c)), b1, out=c_new)  # c' = tanh(b0 + c) b1
        tanh_(torch.mul(c_new, tanh_(torch.add(b2, b3)), out=h))  # h' = tanh(c' q)
        return h, c_new

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c, kept = saved
        T, B, H = c.shape
        # from the kept pre-activations (a copy: a second backward reads them again), the rest
        # of the forward again for every step, elementwise, in place where it can be
        xp = self.project(q["x"], q)  # x3, and storage for the coefficients
        z = kept.clone()
        a = z.view(T, B, 8, H)
        a4, a6, a0, a2, a5, a7, a1, a3 = a.unbind(2)
        x3, m3 = xp[..., 8 * H :], a3.clone()
        a3.mul_(x3)
        _activate(z, H)
        b0, b1, b2 = tanh_(a0 * a1), tanh_(a2 + a3), tanh_(a4 * a5)
        b3 = torch.add(a6, a7).sigmoid_()
        e = torch.empty_like(c)
        torch.add(b0[0], state0[1], out=e[0])  # b0 + c(t-1)
        tanh_(torch.add(b0[1:], c[:-1], out=e[1:]))
        tanh_(e[0])
        qq = tanh_(b2 + b3)
        du = tanh_(c * qq).square_().neg_().add_(1)  # du = dh' (1 - h'^2)
        k_dc = du * qq  # dc = dc' + dh' k_dc
        k_prev = torch.mul(e, e).neg_().add_(1).mul_(b1)  # dc(t-1) = de~ = db0 = dc b1 (1 - e^2)
        db2 = du.mul_(c).mul_(qq.square_().neg_().add_(1))  # dq~ = db2 = db3 per dh'
        db3 = b3.addcmul_(b3, b3, value=-1).mul_(db2)  # db3~ = da6 = da7
        db2.mul_(b2.square_().neg_().add_(1))  # db2~
        db0 = b0.square_().neg_().add_(1).mul_(k_prev)  # db0~ per dc
        db1 = e.mul_(b1.square_().neg_().add_(1))  # db1~ = da2 = da3 per dc
        # da per row block (xp's first 8 blocks are free now): per dh' (rows 0, 1, 4, 5) or
        # per dc (rows 2, 3, 6, 7); then times each block's activation slope
        k = xp[..., : 8 * H].view(T, B, 8, H)
        for r, (u, v) in enumerate([(db2, a5), (db3, 1), (db0, a1), (db1, 1), (db2, a4),
                                    (db3, 1), (db0, a0), (db1, x3)]):  # x3: dm3 = d(x3 m3) x3
            torch.mul(u, v, out=k[:, :, r])
        k.mul_(_slopes(a))
        dx3 = m3.mul_(db1).mul_(a[:, :, 7])  # dx3 = d(x3 m3) m3 per dc
        # row 4i + 2j + r of k and dz (a's storage, free now): per dh' for j = 0, per dc for j = 1
        kv, dzv = k.view(T, B, 2, 2, 2, H), a.view(T, B, 2, 2, 2, H)
        dc = qq  # dc of every step (qq's storage is free now)
        q["dc"], q["dx3"], q["dxp"] = dc, dx3, k.view(T, B, 8 * H)
        steps = (k_dc, kv[:, :, :, 0], kv[:, :, :, 1], k_prev, dc, dc.view(T, B, 1, 1, H),
                 dzv[:, :, :, 0], dzv[:, :, :, 1], z.view(T, B, 8 * H))
        return steps, z.view(T, B, 8 * H)

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_dc, k_h, k_c, k_prev, dc, dc_b, dz_h, dz_c, dz = step
        dh, dc_next = dstate
        torch.addcmul(dc_next, dh, k_dc, out=dc)  # dc = dc' + dh' (1 - h'^2) q
        torch.mul(dh[:, None, None], k_h, out=dz_h)  # the blocks read by h' only
        torch.mul(dc_b, k_c, out=dz_c)  # the blocks read by c'
        return linear(dz, q["wT"], dh_ext), torch.mul(dc, k_prev)

    # the two loops compiled (engine/loops.cpp), where they can run
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        c, kept = saved
        kernels.ops().nas_forward(xp, q["w"], hs, c, state[1], kept, mask)
        return hs[-1], c[-1]

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        c, z = saved  # the loop reads z, writes nothing into it
        T, B, H = c.shape
        x = q["x"].reshape(T * B, -1)
        x3 = linear(x, q["w_x3"]) if q["b_x3"] is None else linear(x, q["w_x3"]).add_(q["b_x3"])
        dz = scratch.empty((T, B, 8 * H), c)
        q["dc"], q["dx3"] = scratch.empty((T, B, H), c), scratch.empty((T, B, H), c)
        q["dxp"] = scratch.empty((T, B, 8 * H), c)
        dh, dc = dstate
        kernels.ops().nas_backward(z, x3.view(T, B, H), c, state0[1], q["w"], dz, q["dc"],
                                    q["dx3"], dhseq, dh, dc, mask)
        return dz, (dh, dc)

    def backward_finish(self, dz: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        H, dxp = self.hidden_size, q["dxp"]  # dxp: into the coefficients' storage, now free
        dxp[..., : 7 * H] = dz[..., : 7 * H]
        torch.mul(q["dc"], q["dx3"], out=dxp[..., 7 * H :])
        return dxp, dz, {}


def _activate(z: Tensor, H: int) -> Tensor:
    """Blocks (..., 8 H) in ``ORDER`` to a4, a6, a0, a2, a5, a7, a1, a3 in place."""
    tanh_(z[..., : 2 * H])
    z[..., 2 * H : 6 * H].sigmoid_()
    z[..., 6 * H :].relu_()
    return z


def _slopes(a: Tensor) -> Tensor:
    """In place, each block's activation output a (..., 8, H) to its slope: 1 - a^2, a (1 - a),
    [a > 0]."""
    a[..., :2, :].square_().neg_().add_(1)  # tanh
    a[..., 2:6, :].addcmul_(a[..., 2:6, :], a[..., 2:6, :], value=-1)  # sigmoid
    a[..., 6:, :].sign_()  # relu (a >= 0)
    return a


def _work(q: Params, like: Tensor) -> tuple[Tensor, ...]:
    """One buffer for layer 2, rows (b3, b2, b0, b1), and its views, made once per call."""
    w = like.new_empty(like.shape[0], 4, like.shape[1])
    q["work"] = views = (w[:, 0], w[:, 1], w[:, 2], w[:, 3], w[:, 1:3], w[:, 0:4:3], w[:, 1:])
    return views


CELLS = (NAS,)
