"""Gated recurrent units (Cho et al. 2014; decks 001, 003), PyTorch gate order r, z, n.

Both cells share torch.nn.GRU's parameter layout and update-gate convention:

    r = sigm(W_ir x + b_ir + W_hr h + b_hr)            reset gate
    z = sigm(W_iz x + b_iz + W_hz h + b_hz)            update gate (high z keeps h)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))      candidate      (``gru``, torch/cuDNN)
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)      candidate      (``gru_cho``, the decks)
    h' = (1 - z) * n + z * h  =  n + z * (h - n)

The decks write h' = (1 - z) h + z h~: their z is our 1 - z. Only where the reset gate acts
differs between the two cells; ``gru`` matches torch.nn.GRU weight for weight.

Backward of one step, given dh' (with d = h - n and hn = W_hn h + b_hn):
    dz = dh' d,   dn = dh' (1 - z),   dh(t-1) = dh' z + ...
    dn~ = dn (1 - n^2)                              (n's pre-activation)
    gru:      dxp_n = dn~,  dhp_n = dn~ r,  dr = dn~ hn
    gru_cho:  dxp_n = dhp_n = dn~,  d(rh) = dn~ W_hn,  dr = d(rh) h,  dh(t-1) += d(rh) r
    pre-activation gradients of the gates: dr r(1-r), dz z(1-z)
    dh(t-1) += W_hh^T dhp  (gru_cho: over the r and z rows only)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from . import kernels, scratch
from .activations import tanh_
from .base import RECURRENT_MASK, Cell, Params, State
from .matmul import linear


class GRU(Cell):
    """The GRU of torch.nn.GRU and cuDNN: the reset gate scales W_hn h + b_hn.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("gru", 3, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> (h,) = cell.step(torch.randn(2, 12), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape
        torch.Size([2, 4])
    """

    name: ClassVar[str] = "gru"
    description: ClassVar[str] = "GRU as torch.nn.GRU and cuDNN compute it (reset gate on W_hn h)"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", 1.0),)
    native_mode: ClassVar[str | None] = "GRU"
    bptt_regularisers: ClassVar[tuple[str, ...]] = ("recurrent_dropout", "zoneout")
    compiled_loop: ClassVar[bool] = True

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        xr, xz, xn = xp.chunk(3, dim=1)
        hr, hz, hn = self.recurrent(h, p).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return ((1 - z) * n + z * h,)

    # ---- bptt: the same step into preallocated buffers, and its backward ---------------------
    # Memory: with ``recompute`` (the default) nothing is saved per step beyond h and x (the
    # engine keeps them); r, z, n and W_hn h + b_hn are recomputed in the backward from one
    # product over all steps. Without it the forward keeps them (4H a step): no second product.
    can_keep: ClassVar[bool] = True

    @property
    def backward_reads_xp(self) -> bool:  # type: ignore[override]
        return self.recompute

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        return () if self.recompute else ((4 * self.hidden_size,),)  # (r, z, hn, n)

    def bptt_setup(self, p: Params) -> Params:
        w, b_ih, b_hh, H = p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), self.hidden_size
        b_n = w.new_zeros(H) if b_hh is None else b_hh[2 * H :]
        # b_hr, b_hz join the input part (one add for all steps); b_hn stays inside r * (...)
        b_x = None if b_ih is None else b_ih + torch.cat([b_hh[: 2 * H], torch.zeros_like(b_n)])
        q = {"w_ih": p["weight_ih"], "b_x": b_x, "b_n": b_n}
        return {**q, **self.recurrent_weights(w=w)}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        (h_prev,) = state
        H = self.hidden_size
        hp = linear(self.dropped(h_prev, q), q["w"])  # W_hh h (r, z, n rows)
        out = saved[0] if saved else hp  # without keeping: a temporary (the backward redoes it)
        rz = torch.add(hp[:, : 2 * H], xp[:, : 2 * H], out=out[:, : 2 * H]).sigmoid_()
        hn = torch.add(hp[:, 2 * H :], q["b_n"], out=out[:, 2 * H : 3 * H])
        n = torch.addcmul(xp[:, 2 * H :], rz[:, :H], hn, out=out[:, 3 * H :] if saved else None)
        tanh_(n)  # tanh(xn + r hn)
        return (torch.lerp(n, h_prev, rz[:, H:], out=h),)  # h' = n + z (h - n)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        T, B, H = h_prev.shape
        rz, hn, n = self._gates(saved, xp, h_prev, q)
        z = rz[..., H:]
        k_n = torch.mul(n, n, out=scratch.empty((T, B, H), n))
        k_n.neg_().add_(1).addcmul_(k_n, z, value=-1)  # dn~ = dh' (1 - z)(1 - n^2)
        k_rz = torch.addcmul(rz, rz, rz, value=-1, out=scratch.empty((T, B, 2 * H), n))
        k_rz[..., :H].mul_(hn)  # dr~ = dn~ hn r(1 - r)
        h_n = torch.sub(h_prev, n, out=scratch.empty((T, B, H), n))
        k_rz[..., H:].mul_(h_n)  # dz~ = dh' (h - n) z(1 - z)
        # gradients laid out (n for xp, r, z, n for W_hh h): both dxp and dhp are slices
        d = scratch.empty((T, B, 4 * H), n)
        steps = (k_n, k_rz[..., :H], k_rz[..., H:], rz[..., :H], z, d[..., :H],
                 d[..., H : 2 * H], d[..., 2 * H : 3 * H], d[..., 3 * H :], d[..., H:])
        return steps, d

    def _gates(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor,
               q: Params) -> tuple[Tensor, Tensor, Tensor]:
        """r z (T, B, 2H), W_hn h + b_hn and n (T, B, H) of every step: what the forward kept
        (read only: a second backward reads it again), or recomputed: one product W_hh h(t-1)
        for all steps, then the step's elementwise ops on whole sequences."""
        T, B, H = h_prev.shape
        if saved:
            return saved[0][..., : 2 * H], saved[0][..., 2 * H : 3 * H], saved[0][..., 3 * H :]
        hp = linear(self.dropped(h_prev, q).reshape(T * B, H), q["w"]).view(T, B, 3 * H)
        rz = hp[..., : 2 * H].add_(xp[..., : 2 * H]).sigmoid_()
        hn = hp[..., 2 * H :].add_(q["b_n"])
        n = tanh_(xp[..., 2 * H :].addcmul_(rz[..., :H], hn))  # xp is ours to overwrite
        return rz, hn, n

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_n, k_r, k_z, r, z, dxn, dr, dz, dhn, dhp = step
        (dh,) = dstate
        dn = torch.mul(dh, k_n, out=dxn)  # dn~
        torch.mul(dn, k_r, out=dr)  # dr~
        torch.mul(dh, k_z, out=dz)  # dz~
        torch.mul(dn, r, out=dhn)  # d(W_hn h + b_hn) = dn~ r
        # dh(t-1) = W_hh^T dhp + dh' z
        return (self.recurrent_backward(dhp, q, dh_ext).addcmul_(dh, z),)

    def backward_finish(self, dz: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        H = self.hidden_size
        return torch.cat([dz[..., H : 3 * H], dz[..., :H]], -1), dz[..., H:], {}

    # the same two loops compiled (engine/loops.cpp), where they can run
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        kernels.ops().gru_forward(xp, q["w"], q["b_n"].contiguous(), hs,
                                   saved[0] if saved else None, mask, q.get(RECURRENT_MASK),
                                   *q.get("zone", ()))
        return (hs[-1],)

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        T, B, H = h_prev.shape
        d = scratch.empty((T, B, 4 * H), h_prev)  # laid out as backward_prepare's
        (dh,) = dstate
        kernels.ops().gru_backward(*self._gates(saved, xp, h_prev, q), h_prev, q["w"], d,
                                    dhseq, dh, mask, q.get(RECURRENT_MASK), *q.get("zone", ()))
        return d, (dh,)


class ResetFirstLoops:
    """The compiled loops (engine/loops.cpp's reset_forward / reset_backward) of the cells
    whose reset gate acts before a second product, W_n (r h): gru_cho and MUT1-3. A cell names
    where r, z, n sit in xp and where z comes from (``loop_layout``: o_r, o_z, o_n, z_from: 0
    W_hh on h, 1 xp alone, 2 W_hz on tanh(h)), whether a high z overwrites the state
    (``overwrites``), its weight blocks (``loop_weights``) and its gates of every step
    (``reset_gates``), from which the backward loop makes its coefficients row by row."""

    loop_layout: ClassVar[tuple[int, int, int, int]] = (0, 1, 2, 0)
    overwrites: ClassVar[bool] = True
    compiled_loop: ClassVar[bool] = True
    keep_bits: ClassVar[int] = 15  # what the forward keeps when it keeps: r, z, n, r h (1 2 4 8)

    def loop_weights(self, q: Params) -> tuple[Tensor, Tensor | None, Tensor]:
        """(W_a: the blocks the first product uses on h, W_hz on tanh(h) or None, W_n)."""
        return q["w_rz"], None, q["w_n"]

    def reset_gates(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                    q: Params) -> tuple[Tensor, Tensor, Tensor]:
        """r, z, n of every step (T, B, H; kept, or computed again), with r h(t-1) (and
        tanh(h(t-1)) where z reads it) left in q["rh"] (q["th"]) for the weight gradients."""
        raise NotImplementedError

    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        kernels.ops().reset_forward(xp, *self.loop_weights(q), *self.loop_layout,
                                     self.overwrites, self.keep_bits, hs,
                                     saved[0] if saved else None, mask)
        return (hs[-1],)

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        r, z, n = self.reset_gates(saved, xp, h_prev, q)
        T, B, H = h_prev.shape
        d = scratch.empty((T, B, 3 * H), h_prev)  # the gates' blocks, in xp's order
        dr, dz, dn = (d[..., o * H : (o + 1) * H] for o in self.loop_layout[:3])
        (dh,) = dstate
        kernels.ops().reset_backward(r, z, n, h_prev, self.overwrites, q.get("th"), dn, dr, dz,
                                      *self.loop_weights(q), dhseq, dh, mask)
        return d, (dh,)


class GRUCho(ResetFirstLoops, Cell):
    """The GRU of Cho et al. as decks 001 and 003 write it: the reset gate scales h before
    W_hn. Parameters and the update convention are torch's (see the module docstring).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("gru_cho", 3, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> (h,) = cell.step(torch.randn(2, 12), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape
        torch.Size([2, 4])
    """

    name: ClassVar[str] = "gru_cho"
    description: ClassVar[str] = "GRU of Cho et al. 2014 as the decks write it (reset gate on h)"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", 1.0),)

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        H = self.hidden_size
        w, b, h_in = p["weight_hh"], p.get("bias_hh"), self.dropped(h, p)
        zrz = torch.addmm(xp[:, : 2 * H], h_in, w[: 2 * H].t())
        rz = torch.sigmoid(zrz if b is None else zrz + b[: 2 * H])
        zn = torch.addmm(xp[:, 2 * H :], rz[:, :H] * h_in, w[2 * H :].t())  # W_hn (r * h)
        n = torch.tanh(zn if b is None else zn + b[2 * H :])
        return (torch.addcmul(n, rz[:, H:], h - n),)

    # ---- bptt: the same step into preallocated buffers, and its backward ---------------------
    # Memory: with ``recompute`` (the default) nothing is saved per step beyond h and x; r, z,
    # r * h and n are recomputed in the backward from two products over all steps. Without it
    # the forward keeps them (4H a step).
    can_keep: ClassVar[bool] = True

    @property
    def backward_reads_xp(self) -> bool:  # type: ignore[override]
        return self.recompute

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        return () if self.recompute else ((4 * self.hidden_size,),)  # (r, z, n, r h)

    overwrites: ClassVar[bool] = False  # h' = n + z (h - n)

    def bptt_setup(self, p: Params) -> Params:
        return reset_first_setup(self, p)  # every b_hh joins the input part

    def reset_gates(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                    q: Params) -> tuple[Tensor, Tensor, Tensor]:
        r, z, n, q["rh"] = reset_first_gates(saved, xp, h_prev, q)  # rh: for dW_hn
        return r, z, n

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        (h_prev,) = state
        k = saved[0] if saved else h.new_empty(h.shape[0], 4 * self.hidden_size)  # a temporary
        _, z, n, _ = reset_first_step(xp, h_prev, q, k)
        return (torch.lerp(n, h_prev, z, out=h),)  # h' = n + z (h - n)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        T, B, H = h_prev.shape
        r, z, n = self.reset_gates(saved, xp, h_prev, q)
        k_n = torch.mul(n, n, out=scratch.empty((T, B, H), n))
        k_n.neg_().add_(1).addcmul_(k_n, z, value=-1)  # dn~ = dh' (1 - z)(1 - n^2)
        h_n = torch.sub(h_prev, n, out=scratch.empty((T, B, H), n))
        k_z = torch.addcmul(z, z, z, value=-1, out=scratch.empty((T, B, H), n)).mul_(h_n)
        k_r = torch.addcmul(r, r, r, value=-1, out=h_n).mul_(h_prev)  # dr~ = d(rh) h r(1-r)
        d = scratch.empty((T, B, 3 * H), n)  # r, z, n: for xp and W_hh alike
        steps = (k_n, k_z, k_r, r, z, d[..., :H], d[..., H : 2 * H], d[..., 2 * H :],
                 d[..., : 2 * H])
        return steps, d

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_n, k_z, k_r, r, z, dr, dz, dn, drz = step
        (dh,) = dstate
        torch.mul(dh, k_n, out=dn)  # dn~
        torch.mul(dh, k_z, out=dz)  # dz~ = dh' (h - n) z(1 - z)
        drh = linear(dn, q["wT_n"])  # d(r h) = W_hn^T dn~
        torch.mul(drh, k_r, out=dr)  # dr~
        # dh(t-1) = W_hr^T dr~ + W_hz^T dz~ + d(r h) r + dh' z
        return (linear(drz, q["wT_rz"], dh_ext).addcmul_(drh, r).addcmul_(dh, z),)

    def buffered_recurrent_inputs(self, q: Params, saved: list[Tensor],
                                  h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        return [(slice(0, 2 * H), h_prev), (slice(2 * H, 3 * H), q["rh"])]


# ---- the reset-before-W_hn step on the bptt path, shared with MUT2 (cells/mut.py) ------------
# r, z = sigm(xp_rz + W_hrz h),  n = tanh(xp_n + W_hn (r h)), every b_hh folded into xp.
def reset_first_setup(cell: Cell, p: Params) -> Params:
    """bptt_setup of such a cell: W_hh split (r, z rows | n rows), as the loops take them."""
    b_ih, b_hh, H = p.get("bias_ih"), p.get("bias_hh"), cell.hidden_size
    w_rz, w_n = p["weight_hh"].split([2 * H, H])
    return {"w_ih": p["weight_ih"], "b_x": None if b_ih is None else b_ih + b_hh,
            **cell.recurrent_weights(w_rz=w_rz, w_n=w_n)}




def reset_first_step(xp: Tensor, h_prev: Tensor, q: Params, k: Tensor) -> tuple[Tensor, ...]:
    """One step's r, z, n and r h, written into k = [r, z, n, r h] (B, 4H)."""
    H = h_prev.shape[1]
    r, z, n, rh = k.split(H, dim=1)
    torch.add(linear(h_prev, q["w_rz"]), xp[:, : 2 * H], out=k[:, : 2 * H]).sigmoid_()
    torch.mul(r, h_prev, out=rh)
    tanh_(torch.add(linear(rh, q["w_n"]), xp[:, 2 * H :], out=n))  # W_hn (r h) + xp_n
    return r, z, n, rh


def reset_first_gates(saved: list[Tensor], xp: Tensor, h_prev: Tensor,
                      q: Params) -> tuple[Tensor, ...]:
    """r, z, n, r h of every step (T, B, H): as the forward kept them (read only), else
    computed again from two products over all steps (xp is overwritten)."""
    T, B, H = h_prev.shape
    if saved:
        return tuple(saved[0].split(H, dim=-1))
    xp2 = xp.view(T * B, 3 * H)
    rz = linear(h_prev.reshape(T * B, H), q["w_rz"]).add_(xp2[:, : 2 * H]).sigmoid_()
    r, z = rz.view(T, B, 2 * H).split(H, dim=-1)
    rh = r * h_prev
    n = tanh_(linear(rh.view(T * B, H), q["w_n"]).add_(xp2[:, 2 * H :])).view(T, B, H)
    return r, z, n, rh


CELLS = (GRU, GRUCho)
