"""The minimal cells of Feng et al. 2024, "Were RNNs all we needed?": gates that skip h(t-1).

    minGRU   (rows of W_ih: z, h)
        z  = sigm(W_z x + b_z)                 update gate (high z overwrites h)
        h~ = g(W_h x + b_h)                    candidate
        h' = (1 - z) * h + z * h~
    minLSTM  (rows of W_ih: f, i, h)
        f  = sigm(W_f x + b_f),   i = sigm(W_i x + b_i)
        f' = f / (f + i),         i' = i / (f + i)      normalised: f' + i' = 1
        h~ = g(W_h x + b_h)
        h' = f' * h + i' * h~

    g(x) = x + 0.5 for x >= 0, sigm(x) otherwise: positive, so log h~ exists (log-space scan).

No gate reads h(t-1), so there is no W_hh and no b_hh: the parameters are ``weight_ih`` and
``bias_ih`` only. Each step is the linear recurrence h' = a h + b with a, b known from x alone,
which the ``scan`` engine (engine/scan.py) solves for all steps at once from
``log_coefficients``; ``bptt`` and ``autograd`` run the same cells step by step.

minLSTM's normalised gates are one sigmoid: i' = sigm(d) with d = softplus(-k_f) - softplus(-k_i)
(since i/f = e^d), f' = 1 - i'; so both cells are h' = h + u (h~ - h) with an update gate u.
Backward of one step, given dh' (with D = h~ - h):
    du = dh' D,   dh~ = dh' u,   dh(t-1) = dh' (1 - u),   dk_h = dh~ g'(k_h)
    minGRU:  dk_z = du z (1 - z)
    minLSTM: dd = du i' (1 - i'),   dk_f = -dd (1 - f),   dk_i = dd (1 - i)
    g'(x) = 1 for x >= 0, sigm(x)(1 - sigm(x)) otherwise.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State


def g(x: Tensor) -> Tensor:
    """The positive activation: x + 0.5 for x >= 0, sigmoid(x) below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g (relu keeps the unused branch finite)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def _g_and_slope(x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """g(x) and g'(x), given s = sigmoid(x), which is overwritten with g'(x) (the cells' s is
    a fresh buffer, so no new one). g = max(x + 0.5, s): the two branches cross at 0 only, and
    each is the larger on its own side; likewise g' = max(s (1 - s), 1 if x >= 0)."""
    gx = torch.add(x, 0.5)
    torch.maximum(gx, s, out=gx)
    s.addcmul_(s, s, value=-1)
    return gx, torch.maximum(s, _step(x), out=s)


def _step(x: Tensor) -> Tensor:
    """1.0 where x >= 0, else 0.0, in float arithmetic: floor(clamp(x, -1, 0)) + 1 (comparisons
    and masks, which go through bool tensors, run several times slower on the CPU)."""
    return x.clamp(-1.0, 0.0).floor_().add_(1.0)


class MinimalCell(Cell):
    """Shared layout and step of minGRU and minLSTM (see the module docstring): W_ih and b_ih
    only, h' = h + u (h~ - h). ``update`` gives u, h~ and g' for any number of steps at once,
    which the sequential scan uses; ``backward_step`` works on any leading shape as well."""

    parallel: ClassVar[bool] = True

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (self.xp_size, self.input_size)}
        if self.bias:
            shapes["bias_ih"] = (self.xp_size,)
        return shapes

    def recurrent_inputs(self, saved: list[Tensor], h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        return []  # no W_hh: nothing multiplies h(t-1)

    def update(self, xp: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...]]:
        """(u, h~, g'(k_h), what ``gate_backward`` needs) from xp (..., xp_size)."""
        raise NotImplementedError

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """(log a, log b) of h(t) = a(t) h(t-1) + b(t) for every step of xp (T, B, xp_size),
        computed in log space (never the log of a rounded-off a or b)."""
        raise NotImplementedError

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        (h,) = state
        u, h_tilde, slope, gate = self.update(xp)
        D = h_tilde - h
        return (torch.addcmul(h, u, D),), (u, D, slope, *gate)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        (dh,) = dstate
        dxp = self.input_backward(saved, dh)
        return dxp, dxp, (dh - dh * saved[0],), {}

    def input_backward(self, saved: tuple, dh: Tensor) -> Tensor:
        """dxp from dh', for one step or (with saved stacked over time) for all at once."""
        u, D, slope, *gate = saved
        H = self.hidden_size
        dxp = dh.new_empty(*dh.shape[:-1], self.xp_size)  # both halves written in place: no cat
        dh_u = torch.mul(dh, u, out=dxp[..., -H:])
        torch.mul(dh_u, D, out=dxp[..., :H])  # du u, which gate_backward turns into the gates'
        dh_u.mul_(slope)  # dk_h = dh u g'
        self.gate_backward(dxp[..., :-H], u, [slope, *gate])
        return dxp

    def gate_backward(self, dgates: Tensor, u: Tensor, gate: list[Tensor]) -> Tensor:
        """The gate pre-activations' gradient, in place in ``dgates``, whose first H columns
        hold du u on entry; ``gate`` is ``update``'s slope and gate tensors."""
        raise NotImplementedError


class MinGRU(MinimalCell):
    """minGRU (Feng et al. 2024): a GRU whose gates skip h(t-1), so it trains by parallel scan.

    Example:
        >>> import torch, rnnkit
        >>> rnn = rnnkit.Recurrent("mingru", 8, 16, backend="scan")
        >>> out, h = rnn(torch.randn(100, 4, 8))
        >>> out.shape, sorted(n for n, _ in rnn.named_parameters())
        (torch.Size([100, 4, 16]), ['bias_ih_l0', 'weight_ih_l0'])
    """

    name: ClassVar[str] = "mingru"
    description: ClassVar[str] = "minGRU (Feng et al. 2024): gates skip h(t-1), parallel scan"
    compiled_scan: ClassVar[int] = 0  # the cell in engine/loops.cpp's minimal loops
    gates: ClassVar[int] = 2
    gate_names: ClassVar[tuple[str, ...]] = ("z", "h")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", -1.0),)  # 1 - z keeps h

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        kz, kh = xp.chunk(2, dim=1)
        z = torch.sigmoid(kz)
        return ((1 - z) * h + z * g(kh),)

    def update(self, xp: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...]]:
        H = self.hidden_size
        s = torch.sigmoid(xp)  # z and the candidate's sigmoid branch in one call
        return s[..., :H], *_g_and_slope(xp[..., H:], s[..., H:]), ()  # s then holds z | g'

    def gate_backward(self, dgates: Tensor, u: Tensor, gate: list[Tensor]) -> Tensor:
        return dgates.addcmul_(dgates, u, value=-1)  # du z (1 - z), in place

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kz, kh = xp.chunk(2, dim=-1)
        return -F.softplus(kz), -F.softplus(-kz) + log_g(kh)  # log(1 - z), log z + log h~


class MinLSTM(MinimalCell):
    """minLSTM (Feng et al. 2024): forget and input gates normalised to sum to one, no output
    gate, no cell state apart from h; trains by parallel scan.

    Example:
        >>> import torch, rnnkit
        >>> rnn = rnnkit.Recurrent("minlstm", 8, 16, num_layers=2, backend="scan")
        >>> out, h = rnn(torch.randn(100, 4, 8))
        >>> out.shape, h.shape
        (torch.Size([100, 4, 16]), torch.Size([2, 4, 16]))
    """

    name: ClassVar[str] = "minlstm"
    description: ClassVar[str] = "minLSTM (Feng et al. 2024): no output gate, parallel scan"
    compiled_scan: ClassVar[int] = 1
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("f", "i", "h")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("f", 1.0),)

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        kf, ki, kh = xp.chunk(3, dim=1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        return (f / (f + i) * h + i / (f + i) * g(kh),)

    def update(self, xp: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...]]:
        H = self.hidden_size
        s = torch.sigmoid(xp)  # f, i and the candidate's sigmoid branch in one call
        u = torch.sigmoid(self._logit(xp[..., :H], xp[..., H : 2 * H]))  # i' = i / (f + i)
        return u, *_g_and_slope(xp[..., 2 * H :], s[..., 2 * H :]), (s[..., : 2 * H],)

    def gate_backward(self, dgates: Tensor, u: Tensor, gate: list[Tensor]) -> Tensor:
        _, fi = gate  # d/dk_f of softplus(-k_f) is -(1 - f), d/dk_i of -softplus(-k_i) is 1 - i
        H = self.hidden_size
        dd = dgates[..., :H].addcmul_(dgates[..., :H], u, value=-1)  # du i' (1 - i')
        torch.neg(dd, out=dgates[..., H:])
        return dgates.mul_(fi - 1)  # dk_f = dd (f - 1), dk_i = -dd (i - 1)

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, kh = xp.chunk(3, dim=-1)
        d = self._logit(kf, ki)
        return -F.softplus(d), -F.softplus(-d) + log_g(kh)  # log f', log i' + log h~

    @staticmethod
    def _logit(kf: Tensor, ki: Tensor) -> Tensor:
        """d = log(i / f) = softplus(-k_f) - softplus(-k_i), so that i' = sigm(d)."""
        return F.softplus(-kf) - F.softplus(-ki)


CELLS = (MinGRU, MinLSTM)
