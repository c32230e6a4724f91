"""MUT1, MUT2, MUT3: the cells Jozefowicz et al. 2015 evolved from the GRU (deck 003).

The deck's equations, with h = h_t the previous state and h' = h_{t+1} the new one:

    MUT1:  z = sigm(W_xz x + b_z)
           r = sigm(W_xr x + W_hr h + b_r)
           h' = tanh(W_hh (r * h) + tanh(x) + b_h) * z + h * (1 - z)
    MUT2:  z = sigm(W_xz x + W_hz h + b_z)
           r = sigm(x + W_hr h + b_r)
           h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)
    MUT3:  z = sigm(W_xz x + W_hz tanh(h) + b_z)
           r = sigm(W_xr x + W_hr h + b_r)
           h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)

A high z overwrites the state (the opposite of torch's GRU), hence ``keep_gates`` ("z", -1).

**x itself.** MUT1 and MUT2 add the input x to a vector of width hidden_size, which needs
input_size == hidden_size: then the cell is exactly the deck's. Otherwise x is first mapped by
a learned projection x~ = W_xproj x (``weight_xproj``, hidden x input, no bias), and x~ takes
x's place: tanh(x~) in MUT1, x~ in MUT2.

**Parameters.** As in torch, each gate block's pre-activation is an input part (``xp``, the
rows of ``bias_ih`` in ``gate_names`` order) plus a recurrent part (the rows of ``weight_hh``
and ``bias_hh``), and there is a matrix only where the deck has one:

    cell   gate order  weight_ih rows     weight_hh rows            x itself
    mut1   n, r, z     r, z      (2H)     n: r*h,  r: h       (2H)  tanh(x~) in n's block
    mut2   r, z, n     z, n      (2H)     r, z: h,  n: r*h    (3H)  x~ in r's block
    mut3   r, z, n     r, z, n   (3H)     r: h, z: tanh(h), n: r*h  (3H)

The recurrent blocks are always the leading gate blocks, so ``bias_hh`` lines up with
``bias_ih`` (MUT1's z has no recurrent part: its rows lie past the end of ``bias_hh``). Since
MUT1's z reads only x, its sigmoid is applied to all steps at once in ``input_projection``.

**bptt.** All three run the engine's buffered path. With ``recompute`` (the default) each
keeps the gate blocks that fit under half the autograd loop's bytes (``recompute_keeps``:
MUT1 r and n, MUT2 n, MUT3 z and n) and computes the others again in the backward from x and
h; with ``recompute=False`` r, z, n and r * h are kept. MUT1 and MUT2 hand the Function their
own inputs (``bptt_inputs``): MUT2 x, projected with [1 or W_xproj; W_ih]; MUT1 x, with
t = tanh(x~) among its parameters, whose input part is [t, W_ih x] (its own ``project`` and
``project_backward``). Autograd routes dx and dW_xproj from there.

**Backward** of one step, given dh' (with h' = h + z d, d = n - h, n = tanh(n~)):
    dn~ = dh' z (1 - n^2),   dz = dh' d,   dh(t-1) = dh' (1 - z) + ...
    d(rh) = W_hh^T dn~ (the n rows),   dr~ = d(rh) h r(1-r),   dh(t-1) += d(rh) r
    dz~ = dz z(1-z)  (MUT1: dz itself, the sigmoid's backward runs with the projection)
    dh(t-1) += W_hr^T dr~  (+ W_hz^T dz~ in MUT2;  + (W_hz^T dz~)(1 - tanh(h)^2) in MUT3)
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..tracing import tracing
from . import scratch
from .activations import tanh, tanh_, tanh_autograd
from .base import Cell, Params, State
from .gru import ResetFirstLoops, reset_first_gates, reset_first_setup, reset_first_step
from .matmul import linear, weight_grad


def _affine(u: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """u W^T + b for one block of rows (the faster product inside the bptt engine)."""
    if not torch.is_grad_enabled() and not tracing():
        return linear(u, w) if b is None else linear(u, w).add_(b)
    return u @ w.t() if b is None else torch.addmm(b, u, w.t())


class _MUT(ResetFirstLoops, Cell):
    gates: ClassVar[int] = 3
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", -1.0),)
    input_extras: ClassVar[tuple[str, ...]] = ("weight_xproj",)
    adds_x: ClassVar[bool] = True  # x itself enters a gate block (MUT1, MUT2)
    ih_blocks: ClassVar[int] = 2  # gate blocks with an input matrix
    hh_blocks: ClassVar[int] = 3  # gate blocks with a recurrent matrix

    # bptt with recompute=False keeps r, z, n and r * h of every step, (B, 4H) a step; with
    # recompute the blocks ``recompute_keeps`` names (what fits under half the autograd loop's
    # bytes: that loop keeps about I + 7H floats a step for MUT3, I + 6H for MUT2, I + 10H for
    # MUT1), and the backward computes the others again from x and h.
    can_keep: ClassVar[bool] = True
    BLOCKS: ClassVar[tuple[str, ...]] = ("r", "z", "n", "rh")

    @property
    def recompute_keeps(self) -> tuple[str, ...]:
        return ()

    @property
    def kept_blocks(self) -> tuple[str, ...]:
        """What the forward keeps of [r, z, n, r * h], in that order."""
        return self.recompute_keeps if self.recompute else self.BLOCKS

    @property
    def keep_bits(self) -> int:  # for the compiled forward: 1 r, 2 z, 4 n, 8 r * h
        return sum(1 << self.BLOCKS.index(b) for b in self.kept_blocks)

    @property
    def backward_reads_xp(self) -> bool:  # type: ignore[override]
        return not self.kept_blocks

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        k = len(self.kept_blocks)
        return ((k * self.hidden_size,),) if k else ()

    def _slots(self, saved: list[Tensor], h: Tensor) -> tuple[Tensor, ...]:
        """Where a forward step writes [r, z, n, r * h] (B, 4H), and those four: the kept
        slot (all four kept), or a temporary (then ``_keep_some`` copies the kept ones)."""
        full = saved and not self.recompute
        k = saved[0] if full else h.new_empty(h.shape[0], 4 * self.hidden_size)
        return k, *k.split(self.hidden_size, dim=1)

    def _keep_some(self, k: Tensor, saved: list[Tensor]) -> None:
        if saved and self.recompute:
            H = self.hidden_size
            for slot, name in enumerate(self.kept_blocks):
                i = self.BLOCKS.index(name)
                saved[0][:, slot * H : (slot + 1) * H] = k[:, i * H : (i + 1) * H]

    @staticmethod
    def _x_rows(q: Params, rows: slice) -> Tensor:
        """W_ih x + b for some of xp's blocks, all steps at once, (T B, .): MUT2 and MUT3,
        whose weight_ih on the bptt path has a row for every row of xp."""
        x, b = q["x"], None if q["b_x"] is None else q["b_x"][rows]
        return linear(x.reshape(-1, x.shape[-1]), q["w_ih"][rows], bias=b)

    def _coefficients(self, r: Tensor, z: Tensor, n: Tensor, h_prev: Tensor):
        """(k_n, k_z, k_r, 1 - z) of the backward from the gates of all steps (read only)."""
        T, B, H = h_prev.shape
        one_z = torch.rsub(z, 1)  # dh(t-1) = dh' (1 - z) + ...
        k_z = torch.sub(n, h_prev, out=scratch.empty((T, B, H), n))
        k_z.mul_(z).mul_(one_z)  # dz~ = dh' (n - h) z (1 - z)
        k_n = torch.mul(n, n, out=scratch.empty((T, B, H), n))
        k_n.neg_().add_(1).mul_(z)  # dn~ = dh' z (1 - n^2)
        k_r = torch.addcmul(r, r, r, value=-1, out=scratch.empty((T, B, H), n))
        k_r.mul_(h_prev)  # dr~ = d(rh) h r (1 - r)
        return k_n, k_z, k_r, one_z

    @property
    def exact(self) -> bool:
        """x enters as itself (the deck's form): only when input_size == hidden_size."""
        return self.input_size == self.hidden_size

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, I = self.hidden_size, self.input_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (self.ih_blocks * H, I),
                                              "weight_hh": (self.hh_blocks * H, H)}
        if self.bias:
            shapes.update(bias_ih=(3 * H,), bias_hh=(self.hh_blocks * H,))
        if self.adds_x and not self.exact:
            shapes["weight_xproj"] = (H, I)
        return shapes

    def x_itself(self, x: Tensor, p: Params) -> Tensor:
        """x, or its learned projection to hidden_size when input_size differs."""
        return x if self.exact else F.linear(x, p["weight_xproj"])

    @staticmethod
    def _gate_grads(dh: Tensor, step: tuple[Tensor, ...], q: Params) -> Tensor:
        """One backward step's shared part (all three cells): dn~, dz~ and dr~ into their
        slots, from k_n, k_z, k_r; returns d(r h) = W_hn^T dn~."""
        k_n, k_z, k_r, dn, dz, dr = step
        torch.mul(dh, k_n, out=dn)  # dn~
        torch.mul(dh, k_z, out=dz)  # dz~
        drh = linear(dn, q["wT_n"])  # d(r h) = W_hn^T dn~
        torch.mul(drh, k_r, out=dr)  # dr~
        return drh

    def _x_block_first(self, first: Tensor, x: Tensor, p: Params) -> Tensor:
        """[first, W_ih x] + b_ih: the input parts of all gate blocks."""
        xp = torch.cat([first, F.linear(x, p["weight_ih"])], dim=-1)
        return xp if "bias_ih" not in p else xp + p["bias_ih"]


class MUT1(_MUT):
    """MUT1: the update gate reads only x; x itself (tanh(x)) enters the candidate.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("mut1", 4, 4)          # input_size == hidden_size: exact form
        >>> sorted(cell.parameter_shapes())
        ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
        >>> "weight_xproj" in make_cell("mut1", 3, 4).parameter_shapes()
        True
    """

    name: ClassVar[str] = "mut1"
    description: ClassVar[str] = "MUT1 (Jozefowicz et al. 2015): update gate from x alone"

    gate_names: ClassVar[tuple[str, ...]] = ("n", "r", "z")
    hh_blocks: ClassVar[int] = 2

    @property
    def recompute_keeps(self) -> tuple[str, ...]:  # type: ignore[override]
        # r and n fit under half the autograd loop's bytes (x, tanh(x~), h, r, n: I + 4H
        # floats a step against I + 10H, or 5H against 10H when x enters as itself) where
        # I <= 2H; then only z, from x alone, is computed again
        return ("r", "n") if self.input_size <= 2 * self.hidden_size else ()

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        H = self.hidden_size
        xp = self._x_block_first(torch.tanh(self.x_itself(x, p)), x, p)
        return torch.cat([xp[..., : 2 * H], torch.sigmoid(xp[..., 2 * H :])], dim=-1)

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        H = self.hidden_size
        w, b, h_in = p["weight_hh"], p.get("bias_hh"), self.dropped(h, p)
        bn, br = (None, None) if b is None else (b[:H], b[H:])
        z = xp[:, 2 * H :]
        r = torch.sigmoid(xp[:, H : 2 * H] + _affine(h_in, w[H:], br))
        n = torch.tanh(xp[:, :H] + _affine(r * h_in, w[:H], bn))
        return (torch.addcmul(h, z, n - h),)

    # ---- bptt: the step into preallocated buffers, and its backward --------------------------
    # x itself enters through tanh, which no row of weight_ih can do: the Function gets x and,
    # among its parameters, t = tanh(x~) (autograd takes dW_xproj, and dx's share, from t's
    # gradient), and its input part is [t, W_ih x] + b: the n block added as it is, the r and z
    # blocks projected. z's sigmoid runs per step (one op), as the backward recomputes it for
    # all steps at once.
    def bptt_inputs(self, x: Tensor, p: Params) -> tuple[Tensor, Params]:
        q = {k: v for k, v in p.items() if k != "weight_xproj"}
        return x, {**q, "x_tanh": tanh_autograd(self.x_itself(x, p))}

    def project(self, x: Tensor, q: Params) -> Tensor:
        H = self.hidden_size
        rz = linear(x.reshape(-1, x.shape[-1]), q["w_ih"]).view(*x.shape[:-1], 2 * H)
        xp = torch.cat([q["x_tanh"], rz], dim=-1)
        return xp if q["b_x"] is None else xp.add_(q["b_x"])

    def project_backward(self, x: Tensor, dxp: Tensor, p: Params, grads: dict[str, Tensor],
                         need_dx: bool) -> Tensor | None:
        H = self.hidden_size
        d2 = dxp.reshape(-1, 3 * H)
        grads["weight_ih"] = weight_grad(d2[:, H:], x.reshape(-1, x.shape[-1]))
        grads["x_tanh"] = dxp[..., :H]
        if "bias_ih" in p:
            grads["bias_ih"] = d2.sum(0)
        if not need_dx:
            return None
        dx = d2[:, H:] @ p["weight_ih"]  # BLAS reads the strided rows (no copy for oneDNN)
        return dx.view(x.shape)

    def bptt_setup(self, p: Params) -> Params:
        b_ih, b_hh, H = p.get("bias_ih"), p.get("bias_hh"), self.hidden_size
        # b_hn and b_hr are added to W (.), so they join the input part (z has no b_hh)
        b_x = None if b_ih is None else b_ih + torch.cat([b_hh, b_hh.new_zeros(H)])
        w_n, w_r = p["weight_hh"].split(H)
        return {"w_ih": p["weight_ih"], "b_x": b_x, "x_tanh": p.get("x_tanh"),
                **self.recurrent_weights(w_n=w_n, w_r=w_r)}

    loop_layout: ClassVar[tuple[int, int, int, int]] = (1, 2, 0, 1)  # n r z; z from xp alone

    def loop_weights(self, q: Params) -> tuple[Tensor, Tensor | None, Tensor]:
        return q["w_r"], None, q["w_n"]

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        (h_prev,) = state
        H = self.hidden_size
        k, r, z, n, rh = self._slots(saved, h)
        torch.sigmoid(xp[:, 2 * H :], out=z)
        torch.add(linear(h_prev, q["w_r"]), xp[:, H : 2 * H], out=r).sigmoid_()
        torch.mul(r, h_prev, out=rh)
        tanh_(torch.add(linear(rh, q["w_n"]), xp[:, :H], out=n))  # W_hn (r h) + xp_n
        self._keep_some(k, saved)
        return (torch.lerp(h_prev, n, z, out=h),)  # h' = h + z (n - h)

    def reset_gates(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                    q: Params) -> tuple[Tensor, Tensor, Tensor]:
        T, B, H = h_prev.shape
        if saved and not self.recompute:  # what the forward kept
            r, z, n, q["rh"] = saved[0].split(H, dim=-1)
            return r, z, n
        if saved:  # r and n kept: z again, from x alone
            r, n = saved[0].split(H, dim=-1)
            b_z = None if q["b_x"] is None else q["b_x"][2 * H :]  # z: weight_ih's rows H:2H
            z = linear(q["x"].reshape(T * B, -1), q["w_ih"][H:], bias=b_z)
            q["rh"] = r * h_prev  # for dW_hn
            return r, z.sigmoid_().view(T, B, H), n
        # the forward again for every step: two products, the rest elementwise
        assert xp is not None
        xp2 = xp.view(T * B, 3 * H)
        z = xp[..., 2 * H :].sigmoid_()
        r = linear(h_prev.reshape(T * B, H), q["w_r"]).add_(xp2[:, H : 2 * H]).sigmoid_()
        r = r.view(T, B, H)
        rh = q["rh"] = r * h_prev  # for dW_hn (buffered_recurrent_inputs)
        n = tanh_(linear(rh.view(T * B, H), q["w_n"]).add_(xp2[:, :H])).view(T, B, H)
        return r, z, n

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        T, B, H = h_prev.shape
        r, z, n = self.reset_gates(saved, xp, h_prev, q)
        k_n, k_z, k_r, one_z = self._coefficients(r, z, n, h_prev)
        d = scratch.empty((T, B, 3 * H), h_prev)  # n, r, z: as xp's blocks
        return (k_n, k_z, k_r, r, one_z, *d.split(H, dim=-1)), d

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_n, k_z, k_r, r, one_z, dn, dr, dz = step
        (dh,) = dstate
        drh = self._gate_grads(dh, (k_n, k_z, k_r, dn, dz, dr), q)
        return (linear(dr, q["wT_r"], dh_ext).addcmul_(drh, r).addcmul_(dh, one_z),)

    def backward_finish(self, dz: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        return dz, dz[..., : 2 * self.hidden_size], {}  # n, r, z for xp; n, r for W_hh

    def buffered_recurrent_inputs(self, q: Params, saved: list[Tensor],
                                  h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        return [(slice(0, H), q["rh"]), (slice(H, 2 * H), h_prev)]


class MUT2(_MUT):
    """MUT2: x itself enters the reset gate, r = sigm(x + W_hr h + b_r).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("mut2", 4, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> xp = cell.input_projection(torch.randn(5, 2, 4), p)
        >>> (h,) = cell.step(xp[0], cell.zero_state(2, xp), p)
        >>> h.shape
        torch.Size([2, 4])
    """

    name: ClassVar[str] = "mut2"
    description: ClassVar[str] = "MUT2 (Jozefowicz et al. 2015): x itself enters the reset gate"
    recompute_keeps: ClassVar[tuple[str, ...]] = ("n",)  # I + 2H floats a step against I + 6H
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        return self._x_block_first(self.x_itself(x, p), x, p)

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        H = self.hidden_size
        w, b, h_in = p["weight_hh"], p.get("bias_hh"), self.dropped(h, p)
        brz, bn = (None, None) if b is None else (b[: 2 * H], b[2 * H :])
        rz = torch.sigmoid(xp[:, : 2 * H] + _affine(h_in, w[: 2 * H], brz))
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(xp[:, 2 * H :] + _affine(r * h_in, w[2 * H :], bn))
        return (torch.addcmul(h, z, n - h),)

    # ---- bptt: the step into preallocated buffers, and its backward --------------------------
    # x itself is linear in x: the Function projects x with [1 or W_xproj; W_ih] (autograd
    # splits that matrix's gradient back), so it keeps only x and h, as the GRU does.
    def bptt_inputs(self, x: Tensor, p: Params) -> tuple[Tensor, Params]:
        w = p["weight_ih"]
        first = (torch.eye(self.hidden_size, dtype=w.dtype, device=w.device) if self.exact
                 else p["weight_xproj"])
        q = {k: v for k, v in p.items() if k != "weight_xproj"}
        return x, {**q, "weight_ih": torch.cat([first, w])}

    def bptt_setup(self, p: Params) -> Params:
        return reset_first_setup(self, p)  # the gru_cho's step, z flipped

    def reset_gates(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                    q: Params) -> tuple[Tensor, Tensor, Tensor]:
        if saved and self.recompute:  # n kept: r and z again, one product over h
            T, B, H = h_prev.shape
            rz = linear(h_prev.reshape(T * B, H), q["w_rz"], self._x_rows(q, slice(0, 2 * H)))
            r, z = rz.sigmoid_().view(T, B, 2 * H).split(H, dim=-1)
            q["rh"] = r * h_prev  # for dW_hn
            return r, z, saved[0]
        r, z, n, q["rh"] = reset_first_gates(saved, xp, h_prev, q)
        return r, z, n

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        (h_prev,) = state
        k = self._slots(saved, h)[0]
        _, z, n, _ = reset_first_step(xp, h_prev, q, k)
        self._keep_some(k, saved)
        return (torch.lerp(h_prev, n, z, out=h),)  # h' = h + z (n - h)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        T, B, H = h_prev.shape
        r, z, n = self.reset_gates(saved, xp, h_prev, q)
        k_n, k_z, k_r, one_z = self._coefficients(r, z, n, h_prev)
        d = scratch.empty((T, B, 3 * H), h_prev)  # r, z, n: for xp and W_hh alike
        steps = (k_n, k_z, k_r, r, one_z, d[..., :H], d[..., H : 2 * H], d[..., 2 * H :],
                 d[..., : 2 * H])
        return steps, d

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_n, k_z, k_r, r, one_z, dr, dz, dn, drz = step
        (dh,) = dstate
        drh = self._gate_grads(dh, (k_n, k_z, k_r, dn, dz, dr), q)
        # dh(t-1) = W_hr^T dr~ + W_hz^T dz~ + d(rh) r + dh' (1 - z)
        return (linear(drz, q["wT_rz"], dh_ext).addcmul_(drh, r).addcmul_(dh, one_z),)

    def buffered_recurrent_inputs(self, q: Params, saved: list[Tensor],
                                  h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        return [(slice(0, 2 * H), h_prev), (slice(2 * H, 3 * H), q["rh"])]


class MUT3(_MUT):
    """MUT3: the update gate reads tanh(h) through W_hz; no x itself, so any input size.

    Example:
        >>> from rnnkit.cells import make_cell
        >>> make_cell("mut3", 3, 4).parameter_shapes()["weight_hh"]
        (12, 4)
    """

    name: ClassVar[str] = "mut3"
    description: ClassVar[str] = "MUT3 (Jozefowicz et al. 2015): update gate reads tanh(h)"
    recompute_keeps: ClassVar[tuple[str, ...]] = ("z", "n")  # I + 3H a step against I + 7H
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    adds_x: ClassVar[bool] = False
    ih_blocks: ClassVar[int] = 3

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias_ih"))

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        H = self.hidden_size
        w, b, h_in = p["weight_hh"], p.get("bias_hh"), self.dropped(h, p)
        br, bz, bn = (None,) * 3 if b is None else b.split(H)
        r = torch.sigmoid(xp[:, :H] + _affine(h_in, w[:H], br))
        z = torch.sigmoid(xp[:, H : 2 * H] + _affine(torch.tanh(h_in), w[H : 2 * H], bz))
        n = torch.tanh(xp[:, 2 * H :] + _affine(r * h_in, w[2 * H :], bn))
        return (torch.addcmul(h, z, n - h),)

    # ---- bptt: the step into preallocated buffers, and its backward --------------------------
    # Memory: nothing is saved per step beyond x and h (the engine keeps them); r, z, n, tanh(h)
    # and r * h are recomputed in the backward from three products over all steps (or, with
    # recompute=False, r, z, n and r * h kept; tanh(h) is then the only recomputed part).
    def bptt_setup(self, p: Params) -> Params:
        b_ih, b_hh = p.get("bias_ih"), p.get("bias_hh")
        # each recurrent part is W (.) + b_hh: all of b_hh joins the input part's add
        q = {"w_ih": p["weight_ih"], "b_x": None if b_ih is None else b_ih + b_hh}
        # three blocks, three different vectors (h, tanh(h), r * h): one product each
        w_r, w_z, w_n = p["weight_hh"].split(self.hidden_size)
        return {**q, **self.recurrent_weights(w_r=w_r, w_z=w_z, w_n=w_n)}

    loop_layout: ClassVar[tuple[int, int, int, int]] = (0, 1, 2, 2)  # z from W_hz tanh(h)

    def loop_weights(self, q: Params) -> tuple[Tensor, Tensor | None, Tensor]:
        return q["w_r"], q["w_z"], q["w_n"]

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        (h_prev,) = state
        H = self.hidden_size
        k, r, z, n, rh = self._slots(saved, h)
        # W u + xp: the add after the product (a strided slice of xp as linear's ``add`` is
        # copied first, a few us more)
        torch.add(linear(h_prev, q["w_r"]), xp[:, :H], out=r).sigmoid_()
        torch.add(linear(tanh(h_prev), q["w_z"]), xp[:, H : 2 * H], out=z).sigmoid_()
        torch.mul(r, h_prev, out=rh)
        tanh_(torch.add(linear(rh, q["w_n"]), xp[:, 2 * H :], out=n))
        self._keep_some(k, saved)
        return (torch.lerp(h_prev, n, z, out=h),)  # h' = h + z (n - h)

    def reset_gates(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                    q: Params) -> tuple[Tensor, Tensor, Tensor]:
        T, B, H = h_prev.shape
        q["th"] = tanh(h_prev)  # for dW_hz (buffered_recurrent_inputs)
        if not self.recompute:  # what the forward kept
            r, z, n, q["rh"] = saved[0].split(H, dim=-1)
            return r, z, n
        # z and n kept: r again, one product over h
        z, n = saved[0].split(H, dim=-1)
        r = linear(h_prev.reshape(T * B, H), q["w_r"], self._x_rows(q, slice(0, H)))
        r = r.sigmoid_().view(T, B, H)
        q["rh"] = r * h_prev  # for dW_hn
        return r, z, n

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        T, B, H = h_prev.shape
        r, z, n = self.reset_gates(saved, xp, h_prev, q)
        k_n, k_z, k_r, one_z = self._coefficients(r, z, n, h_prev)
        k_th = q["th"].square().neg_().add_(1)  # through tanh(h) into z: 1 - tanh(h)^2
        d = scratch.empty((T, B, 3 * H), h_prev)  # r, z, n: as xp's blocks
        return (k_n, k_z, k_r, r, one_z, k_th, *d.split(H, dim=-1)), d

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_n, k_z, k_r, r, one_z, k_th, dr, dz, dn = step
        (dh,) = dstate
        drh = self._gate_grads(dh, (k_n, k_z, k_r, dn, dz, dr), q)
        dprev = linear(dr, q["wT_r"], dh_ext).addcmul_(drh, r).addcmul_(dh, one_z)
        return (dprev.addcmul_(linear(dz, q["wT_z"]), k_th),)  # + (W_hz^T dz~)(1 - tanh(h)^2)

    def buffered_recurrent_inputs(self, q: Params, saved: list[Tensor],
                                  h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        return [(slice(0, H), h_prev), (slice(H, 2 * H), q["th"]), (slice(2 * H, 3 * H), q["rh"])]


CELLS = (MUT1, MUT2, MUT3)
