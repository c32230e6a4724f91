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

from .base import Cell, Params, State


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
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", 1.0),)
    native_mode: ClassVar[str | None] = "GRU"

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        (h,) = state
        H = self.hidden_size
        hp = self.recurrent(h, p)
        rz = torch.sigmoid(xp[:, : 2 * H] + hp[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        hn = hp[:, 2 * H :]
        n = torch.tanh(torch.addcmul(xp[:, 2 * H :], r, hn))
        d = h - n
        return (torch.addcmul(n, z, d),), (rz, n, hn, d)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        rz, n, hn, d = saved
        (dh,) = dstate
        H = self.hidden_size
        r, z = rz[:, :H], rz[:, H:]
        dn = torch.addcmul(dh, dh, z, value=-1)  # dh' (1 - z)
        dnp = torch.addcmul(dn, dn * n, n, value=-1)  # dn (1 - n^2)
        sg = torch.addcmul(rz, rz, rz, value=-1)  # r(1-r), z(1-z)
        dxp = torch.cat([dnp * hn, dh * d, dnp], dim=1)
        dxp[:, : 2 * H] *= sg
        dhp = torch.cat([dxp[:, : 2 * H], dnp * r], dim=1)
        return dxp, dhp, (torch.addcmul(dhp @ p["weight_hh"], dh, z),), {}


class GRUCho(Cell):
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
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", 1.0),)

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        (h,) = state
        H = self.hidden_size
        w, b = p["weight_hh"], p.get("bias_hh")
        zrz = torch.addmm(xp[:, : 2 * H], h, w[: 2 * H].t())
        rz = torch.sigmoid(zrz if b is None else zrz + b[: 2 * H])
        zn = torch.addmm(xp[:, 2 * H :], rz[:, :H] * h, w[2 * H :].t())
        n = torch.tanh(zn if b is None else zn + b[2 * H :])
        return (torch.addcmul(n, rz[:, H:], h - n),), (rz, n, h)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        rz, n, h = saved
        (dh,) = dstate
        H = self.hidden_size
        w = p["weight_hh"]
        r, z = rz[:, :H], rz[:, H:]
        dn = torch.addcmul(dh, dh, z, value=-1)  # dh' (1 - z)
        dnp = torch.addcmul(dn, dn * n, n, value=-1)  # dn (1 - n^2)
        drh = dnp @ w[2 * H :]
        sg = torch.addcmul(rz, rz, rz, value=-1)  # r(1-r), z(1-z)
        dz = torch.cat([drh * h, dh * (h - n), dnp], dim=1)
        dz[:, : 2 * H] *= sg
        dprev = torch.addcmul(dh * z, drh, r).addmm_(dz[:, : 2 * H], w[: 2 * H])
        return dz, dz, (dprev,), {}

    def recurrent_inputs(self, saved: list[Tensor], h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        H = self.hidden_size
        r = saved[0][..., :H]
        return [(slice(0, 2 * H), h_prev), (slice(2 * H, 3 * H), r * h_prev)]


CELLS = (GRU, GRUCho)
