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

from .base import Cell, Params, State
from .matmul import linear


def _affine(u: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """u W^T + b for one block of rows (the faster product inside the bptt engine)."""
    if not torch.is_grad_enabled():
        return linear(u, w) if b is None else linear(u, w).add_(b)
    return u @ w.t() if b is None else torch.addmm(b, u, w.t())


def _tanh_backward(dy: Tensor, y: Tensor) -> Tensor:
    """dy (1 - y^2) for y = tanh(.)."""
    return torch.addcmul(dy, dy * y, y, value=-1)


class _MUT(Cell):
    gates: ClassVar[int] = 3
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", -1.0),)
    input_extras: ClassVar[tuple[str, ...]] = ("weight_xproj",)
    adds_x: ClassVar[bool] = True  # x itself enters a gate block (MUT1, MUT2)
    ih_blocks: ClassVar[int] = 2  # gate blocks with an input matrix
    hh_blocks: ClassVar[int] = 3  # gate blocks with a recurrent matrix

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
    gate_names: ClassVar[tuple[str, ...]] = ("n", "r", "z")
    hh_blocks: ClassVar[int] = 2

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        H = self.hidden_size
        xp = self._x_block_first(torch.tanh(self.x_itself(x, p)), x, p)
        return torch.cat([xp[..., : 2 * H], torch.sigmoid(xp[..., 2 * H :])], dim=-1)

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        (h,) = state
        H = self.hidden_size
        w, b = p["weight_hh"], p.get("bias_hh")
        bn, br = (None, None) if b is None else (b[:H], b[H:])
        z = xp[:, 2 * H :]
        r = torch.sigmoid(xp[:, H : 2 * H] + _affine(h, w[H:], br))
        n = torch.tanh(xp[:, :H] + _affine(r * h, w[:H], bn))
        d = n - h
        return (torch.addcmul(h, z, d),), (z, r, n, d, h)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        z, r, n, d, h = saved
        (dh,) = dstate
        H = self.hidden_size
        w = p["weight_hh"]
        dn = _tanh_backward(dh * z, n)
        drh = linear(dn, w[:H].t())
        dr = drh * h
        dr.mul_(torch.addcmul(r, r, r, value=-1))
        dxp = torch.cat([dn, dr, dh * d], dim=1)
        dprev = linear(dr, w[H:].t(), torch.addcmul(dh, dh, z, value=-1).addcmul_(drh, r))
        return dxp, dxp[:, : 2 * H], (dprev,), {}

    def recurrent_inputs(self, saved: list[Tensor], h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        return [(slice(0, H), saved[1] * h_prev), (slice(H, 2 * H), h_prev)]


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
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        return self._x_block_first(self.x_itself(x, p), x, p)

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        (h,) = state
        H = self.hidden_size
        w, b = p["weight_hh"], p.get("bias_hh")
        brz, bn = (None, None) if b is None else (b[: 2 * H], b[2 * H :])
        rz = torch.sigmoid(xp[:, : 2 * H] + _affine(h, w[: 2 * H], brz))
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(xp[:, 2 * H :] + _affine(r * h, w[2 * H :], bn))
        d = n - h
        return (torch.addcmul(h, z, d),), (rz, n, d, h)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        rz, n, d, h = saved
        (dh,) = dstate
        H = self.hidden_size
        w = p["weight_hh"]
        r, z = rz[:, :H], rz[:, H:]
        dn = _tanh_backward(dh * z, n)
        drh = linear(dn, w[2 * H :].t())
        dz = torch.cat([drh * h, dh * d, dn], dim=1)
        dz[:, : 2 * H].mul_(torch.addcmul(rz, rz, rz, value=-1))
        dprev = torch.addcmul(dh, dh, z, value=-1).addcmul_(drh, r)
        dprev = linear(dz[:, : 2 * H], w[: 2 * H].t(), dprev)
        return dz, dz, (dprev,), {}

    def recurrent_inputs(self, saved: list[Tensor], h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        r = saved[0][..., :H]
        return [(slice(0, 2 * H), h_prev), (slice(2 * H, 3 * H), r * h_prev)]


class MUT3(_MUT):
    """MUT3: the update gate reads tanh(h) through W_hz; no x itself, so any input size.

    Example:
        >>> from rnnkit.cells import make_cell
        >>> make_cell("mut3", 3, 4).parameter_shapes()["weight_hh"]
        (12, 4)
    """

    name: ClassVar[str] = "mut3"
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    adds_x: ClassVar[bool] = False
    ih_blocks: ClassVar[int] = 3

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias_ih"))

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        (h,) = state
        H = self.hidden_size
        w, b = p["weight_hh"], p.get("bias_hh")
        br, bz, bn = (None,) * 3 if b is None else b.split(H)
        th = torch.tanh(h)
        r = torch.sigmoid(xp[:, :H] + _affine(h, w[:H], br))
        z = torch.sigmoid(xp[:, H : 2 * H] + _affine(th, w[H : 2 * H], bz))
        n = torch.tanh(xp[:, 2 * H :] + _affine(r * h, w[2 * H :], bn))
        d = n - h
        return (torch.addcmul(h, z, d),), (r, z, n, d, h, th)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        r, z, n, d, h, th = saved
        (dh,) = dstate
        H = self.hidden_size
        w = p["weight_hh"]
        dn = _tanh_backward(dh * z, n)
        drh = linear(dn, w[2 * H :].t())
        dz = torch.cat([drh * h, dh * d, dn], dim=1)
        dz[:, :H].mul_(torch.addcmul(r, r, r, value=-1))
        dz[:, H : 2 * H].mul_(torch.addcmul(z, z, z, value=-1))
        dprev = linear(dz[:, :H], w[:H].t(), torch.addcmul(dh, dh, z, value=-1).addcmul_(drh, r))
        dprev += _tanh_backward(linear(dz[:, H : 2 * H], w[H : 2 * H].t()), th)
        return dz, dz, (dprev,), {}

    def recurrent_inputs(self, saved: list[Tensor], h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        r, th = saved[0], saved[5]
        return [(slice(0, H), h_prev), (slice(H, 2 * H), th),
                (slice(2 * H, 3 * H), r * h_prev)]


CELLS = (MUT1, MUT2, MUT3)
