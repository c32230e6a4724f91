"""Layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016, "Layer Normalization", sec. 3.1;
the cells of Haste's LayerNormLSTM / LayerNormGRU), PyTorch gate order and weight layout.

Layer normalisation of a vector a of n units (the whole 4H or 3H projection of one example,
or the H units of c), with a gain gamma (init 1) and eps = 1e-5 as torch.nn.LayerNorm:
    LN(a; gamma, beta) = gamma * (a - mu) / sigma + beta,
    mu = mean_k a_k,   sigma = sqrt(mean_k (a_k - mu)^2 + eps)

The input and the recurrent projections are normalised separately, each with its own gain
(``weight_ln_ih``, ``weight_ln_hh``); the biases ``bias_ih`` and ``bias_hh`` are their betas.

``lstm_layernorm``, gates i, f, g, o (the gain and bias of c: ``weight_ln_c``, ``bias_ln_c``):
    (i~, f~, g~, o~) = LN(W_ih x; gamma_x, b_ih) + LN(W_hh h; gamma_h, b_hh)
    i = sigm(i~),  f = sigm(f~),  g = tanh(g~),  o = sigm(o~)
    c' = f * c + i * g
    h' = o * tanh(LN(c'; gamma_c, beta_c))

``gru_layernorm``, gates r, z, n as torch.nn.GRU (the reset gate scales the recurrent n part):
    (x_r, x_z, x_n) = LN(W_ih x; gamma_x, b_ih),   (s_r, s_z, s_n) = LN(W_hh h; gamma_h, b_hh)
    r = sigm(x_r + s_r),  z = sigm(x_z + s_z),  n = tanh(x_n + r * s_n)
    h' = (1 - z) * n + z * h  =  n + z (h - n)

Backward of LN for one example, with n = (a - mu) / sigma and dy the gradient of its output:
    dgamma += dy n,   dbeta += dy,   dn = dy gamma
    da = (dn - mean_k(dn) - n mean_k(dn n)) / sigma

Backward of one LSTM step, given dh' and dc' (t = tanh(LN(c'))):
    do~ = dh' t o(1-o),   dchat = dh' o (1 - t^2)           (chat = LN(c'))
    dc = dc' + LN backward of dchat (through gamma_c, over the H units of c')
    di~ = dc g i(1-i),  df~ = dc c f(1-f),  dg~ = dc i (1-g^2),  dc(t-1) = dc f
    d(W_hh h) = LN backward of (di~, df~, dg~, do~) (over the 4H units),
    dh(t-1) = W_hh^T d(W_hh h)
Backward of one GRU step, given dh':
    dn~ = dh' (1 - z)(1 - n^2),  dr~ = dn~ s_n r(1-r),  dz~ = dh' (h - n) z(1-z)
    d(W_hh h) = LN backward of (dr~, dz~, dn~ r) (over the 3H units)
    dh(t-1) = W_hh^T d(W_hh h) + dh' z
The input side, LN(W_ih x), reads no state; its product W_ih x runs for all steps at once
before the loop, and dW_ih and dx after it (one product each).

bptt (buffered; compiled loops in engine/loops.cpp) keeps x and h (the engine), the step's
product W_hh h(t-1) (G H floats a step) and, for the LSTM, c(t) (H): I + 6H floats a step for
the LSTM and I + 4H for the GRU, against about I + 14H for their autograd loops. The backward
forms W_ih x again (one product over all steps) and from it and the kept product the
normalisations, the gates and LN(c') once more. The compiled loops do all of that row by row,
each row in cache: the normalisations in the forward; in the backward the recomputation, the
three LN backwards and the sums of the gains' and biases' gradients. The Python loops (the
fallback, and the reference the compiled ones are tested against) do the same with
whole-sequence ops around a loop of a few ops a step. ``recompute=False`` keeps W_ih x as
well (G H more floats a step) instead of forming it again.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from . import kernels, scratch
from .activations import tanh_
from .base import Cell, Params, State
from .matmul import linear, project

EPS = 1e-5  # torch.nn.LayerNorm's


def _normalise(a: Tensor) -> tuple[Tensor, Tensor]:
    """(a - mu) / sigma over the last dimension, and 1 / sigma (a column): no autograd."""
    n, _, rstd = torch.native_layer_norm(a, (a.shape[-1],), None, None, EPS)
    return n, rstd


def norm_backward(dn: Tensor, n: Tensor, rstd: Tensor) -> Tensor:
    """LN's backward over the last dimension: da = (dn - mean(dn) - n mean(dn n)) / sigma,
    from the gradient ``dn`` of the normalised n (after the gain) and 1 / sigma ``rstd``."""
    m2 = (dn * n).mean(-1, keepdim=True)
    return (dn - dn.mean(-1, keepdim=True)).sub_(n * m2).mul_(rstd)


class _LayerNormCell(Cell):
    """What both cells share: the parameters, the normalised input projection of every step
    (and its backward) and the gradients summed after the loop."""

    native_mode: ClassVar[str | None] = None  # torch has no kernel for these
    compiled_loop: ClassVar[bool] = True
    saves_h: ClassVar[bool] = True
    can_keep: ClassVar[bool] = True  # recompute=False keeps W_ih x too (G H floats a step)

    @property
    def backward_reads_xp(self) -> bool:  # type: ignore[override]
        return self.recompute

    def _kept(self) -> tuple[tuple[int, ...], ...]:
        """What ``saved_shapes`` adds without ``recompute``: W_ih x of every step, last."""
        return () if self.recompute else ((self.gates * self.hidden_size,),)

    def _keep_xp(self, xp: Tensor, saved: list[Tensor]) -> None:
        if not self.recompute:
            saved[-1].copy_(xp)

    def _xp(self, xp: Tensor | None, saved: list[Tensor]) -> Tensor:
        """W_ih x of every step in the backward: kept, or formed again by the engine."""
        return xp if self.recompute else saved[-1]

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        GH = self.gates * self.hidden_size
        return {"weight_ln_ih": (GH,), "weight_ln_hh": (GH,)}

    def reset_parameters(self, params: Params) -> None:
        """torch.nn's default for the weights and biases; LN gains 1, LN biases 0."""
        super().reset_parameters(params)
        with torch.no_grad():
            for k, v in params.items():
                if k.startswith("weight_ln"):
                    v.fill_(1.0)
                elif k.startswith("bias_ln"):
                    v.zero_()

    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        """LN(W_ih x; gamma_x, b_ih) for every step at once, under autograd."""
        a = project(x, p["weight_ih"])
        return F.layer_norm(a, (a.shape[-1],), p["weight_ln_ih"], p.get("bias_ih"), EPS)

    def recurrent_ln(self, h: Tensor, p: Params) -> Tensor:
        """LN(W_hh h; gamma_h, b_hh), under autograd."""
        s = self.dropped(h, p) @ p["weight_hh"].t()
        return F.layer_norm(s, (s.shape[-1],), p["weight_ln_hh"], p.get("bias_hh"), EPS)

    # ---- bptt ---------------------------------------------------------------------------------
    def _setup(self, p: Params, b_x: Tensor | None) -> Params:
        q = {"w_ih": p["weight_ih"], "b_x": b_x, "g_x": p["weight_ln_ih"],
             "g_h": p["weight_ln_hh"]}
        return {**q, **self.recurrent_weights(w=p["weight_hh"])}

    def project(self, x: Tensor, q: Params) -> Tensor:
        """W_ih x for every step, no bias (the steps normalise it, then add b_x)."""
        a = linear(x.reshape(-1, x.shape[-1]), q["w_ih"])
        return a.view(*x.shape[:-1], a.shape[-1])

    def _input_ln(self, xp: Tensor, q: Params) -> Tensor:
        """LN(W_ih x) gamma_x + b_x of one step, from W_ih x."""
        return torch.native_layer_norm(xp, (xp.shape[-1],), q["g_x"], q["b_x"], EPS)[0]

    def _input_part(self, xp: Tensor, q: Params) -> Tensor:
        """LN(W_ih x) gamma_x + b_x for every step, from W_ih x (T, B, G H); keeps the
        normalised W_ih x and 1 / sigma in q for ``backward_finish``."""
        n, q["rstd_x"] = _normalise(xp.view(-1, xp.shape[-1]))
        q["n_x"] = n
        u = torch.mul(n, q["g_x"]) if q["b_x"] is None else torch.addcmul(q["b_x"], n, q["g_x"])
        return u.view(xp.shape)

    def _finish_compiled(self, dhp: Tensor, q: Params, hh_row: int,
                         extras: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """After the compiled backward: (d(W_ih x), written over xp; dhp; the gradients it
        summed, rows of q["sums"]: db_ih, db_hh (row ``hh_row``), dgamma_x, dgamma_h)."""
        g = q["sums"][: 4 * dhp.shape[-1]].view(4, -1)
        grads = {"weight_ln_ih": g[2].clone(), "weight_ln_hh": g[3].clone(), **extras}
        if q["b_x"] is not None:  # each its own memory (two .grad must not share it)
            grads["bias_ih"], grads["bias_hh"] = g[0].clone(), g[hh_row].clone()
        return q["dxp"], dhp, grads

    def _biases(self, q: Params) -> Tensor:
        """b_x for the compiled loops (zeros without bias)."""
        return q["g_x"].new_zeros(q["g_x"].shape) if q["b_x"] is None else q["b_x"].contiguous()

    def _sums(self, q: Params, n: int, like: Tensor) -> Tensor:
        """The buffer of gradient sums the compiled backward fills (``backward_finish``)."""
        q["sums"] = like.new_empty(n)
        return q["sums"]

    def _recurrent_normalised(self, s: Tensor, q: Params) -> tuple[Tensor, Tensor]:
        """The kept W_hh h(t-1) of every step (T, B, G H) normalised: (n_h (T B, G H), 1 /
        sigma (T B, 1)); n_h also in q for the gain's gradient."""
        n_h, rstd_h = _normalise(s.reshape(-1, s.shape[-1]))
        q["n_h"] = n_h
        return n_h, rstd_h

    def _finish(self, du: Tensor, ds: Tensor, dhp: Tensor, q: Params,
                extras: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """From the gradients of the normalised input part ``du`` and recurrent part ``ds``
        (after their gains and biases, (T, B, G H)) and of W_hh h, ``dhp``: (d(W_ih x), dhp,
        the gains' and biases' gradients)."""
        T, B, GH = du.shape
        du2, ds2 = du.reshape(T * B, GH), ds.reshape(T * B, GH)
        grads = {"weight_ln_ih": (du2 * q["n_x"]).sum(0), "weight_ln_hh": (ds2 * q["n_h"]).sum(0),
                 **extras}
        if q["b_x"] is not None:  # the engine keeps these (bptt.py takes a cell's own)
            grads["bias_ih"], grads["bias_hh"] = du2.sum(0), ds2.sum(0)
        da = norm_backward(du2 * q["g_x"], q["n_x"], q["rstd_x"])  # d(W_ih x)
        return da.view(T, B, GH), dhp, grads


class LSTMLayerNorm(_LayerNormCell):
    """LSTM with layer normalisation of the input and recurrent projections and of the cell
    (Ba et al. 2016), gate order i, f, g, o; see the module docstring.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("lstm_layernorm", 3, 4)
        >>> sorted(k for k in cell.parameter_shapes() if "ln" in k)
        ['bias_ln_c', 'weight_ln_c', 'weight_ln_hh', 'weight_ln_ih']
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> h, c = cell.step(torch.randn(2, 16), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    name: ClassVar[str] = "lstm_layernorm"
    description: ClassVar[str] = "LSTM, layer normalisation of W x, W h and c (Ba et al. 2016)"
    gates: ClassVar[int] = 4
    gate_names: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    num_states: ClassVar[int] = 2

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes = {**super().extra_shapes(), "weight_ln_c": (H,)}
        if self.bias:
            shapes["bias_ln_c"] = (H,)
        return shapes

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        h, c = state
        i, f, g, o = (xp + self.recurrent_ln(h, p)).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        chat = F.layer_norm(c_new, (self.hidden_size,), p["weight_ln_c"], p.get("bias_ln_c"),
                            EPS)
        return o * torch.tanh(chat), c_new

    # ---- bptt: c(t) and W_hh h(t-1) saved, the rest recomputed (module docstring) -------------
    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.hidden_size,), (4 * self.hidden_size,), *self._kept())  # c, W_hh h(t-1)

    def bptt_setup(self, p: Params) -> Params:
        b_ih, b_hh, g_c = p.get("bias_ih"), p.get("bias_hh"), p["weight_ln_c"]
        q = self._setup(p, None if b_ih is None else b_ih + b_hh)  # both biases in one add
        q["g_c"], q["b_c"] = g_c, p.get("bias_ln_c", torch.zeros_like(g_c))
        return q

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        h_prev, c = state
        c_new, s = saved[:2]
        self._keep_xp(xp, saved)
        H = self.hidden_size
        s.copy_(linear(h_prev, q["w"]))  # W_hh h, kept
        z = torch.native_layer_norm(s, (4 * H,), q["g_h"], None, EPS)[0]
        z = z.add_(self._input_ln(xp, q)).view(-1, 4, H)
        z[:, :2].sigmoid_()
        i, f, g, o = z.unbind(1)
        tanh_(g)
        o.sigmoid_()
        torch.mul(f, c, out=c_new).addcmul_(i, g)  # c' = f c + i g
        chat = torch.native_layer_norm(c_new, (H,), q["g_c"], q["b_c"], EPS)[0]
        torch.mul(o, tanh_(chat), out=h)  # h' = o tanh(LN(c'))
        return h, c_new

    def _coefficients(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                      q: Params) -> tuple[Tensor, ...]:
        """Per step, from c(t) and the recomputed gates: k = (g i(1-i), c(t-1) f(1-f),
        i (1-g^2), t o(1-o)) (T, B, 4, H), k_h = o (1 - t^2), f, n_c (T, B, H), 1 / sigma_c
        (T, B), n_h (T, B, 4H), 1 / sigma_h (T, B); t = tanh(LN(c(t)))."""
        c, s = saved[:2]
        T, B, H = c.shape
        n_h, rstd_h = self._recurrent_normalised(s, q)
        a = self._input_part(self._xp(xp, saved), q).view(T * B, 4 * H)
        a = a.addcmul_(n_h, q["g_h"]).view(T, B, 4, H)
        a[:, :, :2].sigmoid_()
        tanh_(a[:, :, 2])
        a[:, :, 3].sigmoid_()
        i, f, g, o = a.unbind(2)
        n_c, rstd_c = _normalise(c)
        q["n_c"] = n_c
        t = tanh_(torch.addcmul(q["b_c"], n_c, q["g_c"]))
        k = scratch.empty((T, B, 4, H), c)
        k_i, k_f, k_g, k_o = k.unbind(2)
        torch.addcmul(i, i, i, value=-1, out=k_i).mul_(g)  # g i(1-i)
        torch.addcmul(f, f, f, value=-1, out=k_f)  # c(t-1) f(1-f)
        k_f[0].mul_(state0[1])
        k_f[1:].mul_(c[:-1])
        torch.addcmul(i, i, g.square(), value=-1, out=k_g)  # i (1-g^2)
        torch.addcmul(o, o, o, value=-1, out=k_o).mul_(t)  # t o(1-o)
        k_h = torch.addcmul(o, o, t.square(), value=-1)  # o (1 - t^2)
        return (k, k_h, f, n_c, rstd_c.view(T, B), n_h.view(T, B, 4 * H), rstd_h.view(T, B))

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        c = saved[0]
        T, B, H = c.shape
        k, k_h, f, n_c, rstd_c, n_h, rstd_h = self._coefficients(saved, xp, h_prev, state0, q)
        d = scratch.empty((T, B, 9 * H), c)  # d(gates~) 4H, d(W_hh h) 4H, d LN(c) H
        steps = (k, k_h, f, n_c, rstd_c.unsqueeze(-1), n_h, rstd_h.unsqueeze(-1),
                 d[..., : 4 * H], d[..., 4 * H : 8 * H], d[..., 8 * H :])
        return steps, d

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k, k_h, f, n_c, rstd_c, n_h, rstd_h, du, dhp, dchat = step
        dh, dc = dstate
        torch.mul(dh, k_h, out=dchat)  # d LN(c') = dh' o (1 - t^2)
        dc.add_(norm_backward(dchat * q["g_c"], n_c, rstd_c))  # dc = dc' + through LN(c')
        du3 = du.view(-1, 4, self.hidden_size)
        torch.mul(dc.unsqueeze(1), k[:, :3], out=du3[:, :3])  # di~, df~, dg~
        torch.mul(dh, k[:, 3], out=du3[:, 3])  # do~
        dc.mul_(f)  # dc(t-1) = dc f
        dhp.copy_(norm_backward(du * q["g_h"], n_h, rstd_h))  # d(W_hh h)
        return linear(dhp, q["wT"], dh_ext), dc  # dh(t-1) = W_hh^T d(W_hh h)

    def backward_finish(self, d: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        H = self.hidden_size
        if "sums" in q:  # compiled: d is d(W_hh h), the rest summed by the loop
            g = q["sums"][16 * H :].view(2, H).clone()
            extras = {"weight_ln_c": g[0], **({} if q["b_x"] is None else {"bias_ln_c": g[1]})}
            return self._finish_compiled(d, q, 0, extras)  # db_hh = db_ih
        du, dchat = d[..., : 4 * H], d[..., 8 * H :]
        extras = {"weight_ln_c": (dchat * q["n_c"]).sum((0, 1))}
        if q["b_x"] is not None:
            extras["bias_ln_c"] = dchat.sum((0, 1))
        return self._finish(du, du, d[..., 4 * H : 8 * H], q, extras)

    # ---- the same two loops compiled (engine/loops.cpp), where they can run ------------------
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        c, s = saved[:2]
        self._keep_xp(xp, saved)
        kernels.ops().lnlstm_forward(xp, q["w"], q["g_x"].contiguous(), self._biases(q),
                                      q["g_h"].contiguous(), q["g_c"].contiguous(),
                                      q["b_c"].contiguous(), hs, c, s, state[1], mask)
        return hs[-1], c[-1]

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        c, s = saved[:2]
        T, B, H = c.shape
        xp = self._xp(xp, saved)
        d = scratch.empty((T, B, 4 * H), c)  # d(W_hh h)
        q["dxp"] = scratch.empty((T, B, 4 * H), c)  # d(W_ih x)
        dh, dc = dstate
        kernels.ops().lnlstm_backward(xp, s, c, state0[1], q["g_x"].contiguous(),
                                       self._biases(q), q["g_h"].contiguous(),
                                       q["g_c"].contiguous(), q["b_c"].contiguous(), q["w"], d,
                                       q["dxp"], dhseq, dh, dc, self._sums(q, 18 * H, c), mask)
        return d, (dh, dc)


class GRULayerNorm(_LayerNormCell):
    """GRU with layer normalisation of the input and recurrent projections (Ba et al. 2016,
    Haste's LayerNormGRU), torch.nn.GRU's gate order r, z, n; see the module docstring.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("gru_layernorm", 3, 4)
        >>> cell.parameter_shapes()["weight_ln_hh"]
        (12,)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> (h,) = cell.step(torch.randn(2, 12), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape
        torch.Size([2, 4])
    """

    name: ClassVar[str] = "gru_layernorm"
    description: ClassVar[str] = "GRU, layer normalisation of W x and W h (Ba et al. 2016)"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("z", 1.0),)

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        (h,) = state
        xr, xz, xn = xp.chunk(3, dim=1)
        sr, sz, sn = self.recurrent_ln(h, p).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + sr), torch.sigmoid(xz + sz)
        n = torch.tanh(xn + r * sn)
        return ((1 - z) * n + z * h,)

    # ---- bptt: W_hh h(t-1) saved, the gates recomputed (module docstring) ---------------------
    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((3 * self.hidden_size,), *self._kept())  # W_hh h(t-1)

    def bptt_setup(self, p: Params) -> Params:
        b_ih, b_hh, H = p.get("bias_ih"), p.get("bias_hh"), self.hidden_size
        # b_hr, b_hz join the input part; b_hn stays inside r * (...)
        b_x = None if b_ih is None else b_ih + torch.cat([b_hh[: 2 * H],
                                                          torch.zeros_like(b_hh[2 * H :])])
        q = self._setup(p, b_x)
        q["b_n"] = p["weight_hh"].new_zeros(H) if b_hh is None else b_hh[2 * H :]
        return q

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        (h_prev,) = state
        H = self.hidden_size
        saved[0].copy_(linear(h_prev, q["w"]))  # W_hh h, kept
        self._keep_xp(xp, saved)
        s = torch.native_layer_norm(saved[0], (3 * H,), q["g_h"], None, EPS)[0]
        xp = self._input_ln(xp, q)
        rz = s[:, : 2 * H].add_(xp[:, : 2 * H]).sigmoid_()
        sn = s[:, 2 * H :].add_(q["b_n"])
        n = tanh_(torch.addcmul(xp[:, 2 * H :], rz[:, :H], sn))  # tanh(x_n + r s_n)
        return (torch.lerp(n, h_prev, rz[:, H:], out=h),)  # h' = n + z (h - n)

    def _coefficients(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor,
                      q: Params) -> tuple[Tensor, ...]:
        """Per step, from the recomputed gates: k_n = (1 - z)(1 - n^2), k_r = s_n r(1-r), k_z
        = (h - n) z(1-z) (T, B, H), r z (T, B, 2H), n_h (T, B, 3H), 1 / sigma_h (T, B)."""
        T, B, H = h_prev.shape
        n_h, rstd_h = self._recurrent_normalised(saved[0], q)
        xp = self._input_part(self._xp(xp, saved), q)
        s = torch.mul(n_h, q["g_h"]).view(T, B, 3 * H)
        rz = s[..., : 2 * H].add_(xp[..., : 2 * H]).sigmoid_()
        sn = s[..., 2 * H :].add_(q["b_n"])
        n = tanh_(xp[..., 2 * H :].addcmul_(rz[..., :H], sn))
        r, z = rz[..., :H], rz[..., H:]
        k_n = torch.addcmul(z, z, n.square(), value=-1).neg_().add_(1).sub_(n.square())
        # (1 - z)(1 - n^2) = 1 - n^2 - z + z n^2
        k_r = torch.addcmul(r, r, r, value=-1).mul_(sn)
        k_z = torch.addcmul(z, z, z, value=-1).mul_(h_prev - n)
        return (k_n, k_r, k_z, rz, n_h.view(T, B, 3 * H), rstd_h.view(T, B))

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params):
        T, B, H = h_prev.shape
        k_n, k_r, k_z, rz, n_h, rstd_h = self._coefficients(saved, xp, h_prev, q)
        # d: dn~ (xp's n), dr~, dz~, dn~ r (W_hh h's normalised r, z, n), d(W_hh h) 3H
        d = scratch.empty((T, B, 7 * H), h_prev)
        steps = (k_n, k_r, k_z, rz[..., :H], rz[..., H:], n_h, rstd_h.unsqueeze(-1),
                 d[..., :H], d[..., H : 2 * H], d[..., 2 * H : 3 * H], d[..., 3 * H : 4 * H],
                 d[..., H : 4 * H], d[..., 4 * H :])
        return steps, d

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k_n, k_r, k_z, r, z, n_h, rstd_h, dn, dr, dz, dnr, ds, dhp = step
        (dh,) = dstate
        torch.mul(dh, k_n, out=dn)  # dn~
        torch.mul(dn, k_r, out=dr)  # dr~
        torch.mul(dh, k_z, out=dz)  # dz~
        torch.mul(dn, r, out=dnr)  # d s_n = dn~ r
        dhp.copy_(norm_backward(ds * q["g_h"], n_h, rstd_h))  # d(W_hh h)
        return (linear(dhp, q["wT"], dh_ext).addcmul_(dh, z),)  # + dh' z

    def backward_finish(self, d: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        H = self.hidden_size
        if "sums" in q:  # compiled: d is d(W_hh h), the rest summed by the loop
            return self._finish_compiled(d, q, 1, {})
        du = torch.cat([d[..., H : 3 * H], d[..., :H]], -1)  # r, z, n
        return self._finish(du, d[..., H : 4 * H], d[..., 4 * H :], q, {})

    # ---- the same two loops compiled (engine/loops.cpp), where they can run ------------------
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        self._keep_xp(xp, saved)
        kernels.ops().lngru_forward(xp, q["w"], q["g_x"].contiguous(), self._biases(q),
                                     q["g_h"].contiguous(), q["b_n"].contiguous(), hs,
                                     saved[0], mask)
        return (hs[-1],)

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        T, B, H = h_prev.shape
        d = scratch.empty((T, B, 3 * H), h_prev)  # d(W_hh h)
        q["dxp"] = scratch.empty((T, B, 3 * H), h_prev)  # d(W_ih x)
        z = scratch.empty((T, B, H), h_prev)  # the update gate of every step (the loop's)
        (dh,) = dstate
        kernels.ops().lngru_backward(self._xp(xp, saved), saved[0], z, h_prev.contiguous(),
                                      q["g_x"].contiguous(), self._biases(q),
                                      q["g_h"].contiguous(), q["b_n"].contiguous(), q["w"], d,
                                      q["dxp"], dhseq, dh, self._sums(q, 12 * H, h_prev), mask)
        return d, (dh,)


CELLS = (LSTMLayerNorm, GRULayerNorm)
