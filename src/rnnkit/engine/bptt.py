"""Backpropagation through time written out by hand (decks 000 and 003).

Forward: the recurrent loop, keeping only what each cell's ``backward_step`` needs.
Backward: walk the steps in reverse, each cell's hand-derived step backward gives the
gradients of the pre-activations; the recurrent weight gradient is then one matmul over all
steps, dW_hh = sum_t dz(t)^T h(t-1), instead of T small ones. The input projection W_ih x + b_ih
for every step is computed outside (one matmul, whose backward is again one matmul).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cells.base import Cell, Params, State


class _BPTT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cell: Cell, names: tuple[str, ...], mask, xp, n_states: int, *tensors):
        state = tuple(tensors[:n_states])
        p = dict(zip(names, tensors[n_states:]))
        h0 = state[0]
        hs, saved = [], []
        for t in range(xp.shape[0]):
            new, s = cell.forward_step(xp[t], state, p)
            if mask is not None:
                m = mask[t].unsqueeze(1)
                new = tuple(torch.where(m, n, o) for n, o in zip(new, state))
            state = new
            hs.append(state[0])
            saved.append(s)
        hseq = torch.stack(hs)
        columns = [torch.stack(col) for col in zip(*saved)] if saved else []
        ctx.cell, ctx.names, ctx.n_states, ctx.n_saved = cell, names, n_states, len(columns)
        ctx.has_mask = mask is not None
        ctx.save_for_backward(hseq, h0, *columns, *tensors[n_states:],
                              *(() if mask is None else (mask,)))
        return (hseq, *state)

    @staticmethod
    def backward(ctx, dhseq, *dfinal):
        cell: Cell = ctx.cell
        hseq, h0, *rest = ctx.saved_tensors
        columns, rest = rest[: ctx.n_saved], rest[ctx.n_saved :]
        mask = rest.pop() if ctx.has_mask else None
        p = dict(zip(ctx.names, rest))
        T = hseq.shape[0]
        dstate = tuple(dfinal)
        dxp = dhp = None
        dextras: dict[str, Tensor] = {}
        for t in range(T - 1, -1, -1):
            dstate = (dstate[0] + dhseq[t], *dstate[1:])
            if mask is not None:  # a masked-out step passed its state through unchanged
                m = mask[t].unsqueeze(1).to(hseq.dtype)
                carry = tuple(d * (1 - m) for d in dstate)
                dstate = tuple(d * m for d in dstate)
            dx, dh, dprev, dext = cell.backward_step(tuple(col[t] for col in columns), dstate, p)
            if dxp is None:
                dxp = dx.new_empty((T, *dx.shape))
                dhp = dxp if dh is dx else dh.new_empty((T, *dh.shape))
            dxp[t] = dx
            if dhp is not dxp:
                dhp[t] = dh
            for k, v in dext.items():
                dextras[k] = v if k not in dextras else dextras[k] + v
            dstate = dprev if mask is None else tuple(a + b for a, b in zip(dprev, carry))
        grads = {}
        if "weight_hh" in p:
            h_prev = torch.cat([h0.unsqueeze(0), hseq[:-1]])
            dw = torch.zeros_like(p["weight_hh"])
            for rows, U in cell.recurrent_inputs(columns, h_prev):
                dz = dhp[..., rows].reshape(-1, dw[rows].shape[0])
                dw[rows] += dz.t() @ U.reshape(-1, U.shape[-1])
            grads["weight_hh"] = dw
        if "bias_hh" in p:
            grads["bias_hh"] = dhp.sum((0, 1))
        grads.update(dextras)
        return (None, None, None, dxp, None, *dstate, *(grads.get(n) for n in ctx.names))


def run_bptt(
    cell: Cell, xp: Tensor, state: State, p: Params, mask: Tensor | None = None
) -> tuple[Tensor, State]:
    """Same contract as ``run_autograd``, gradients from the hand-derived backward."""
    names = tuple(k for k in p if k not in ("weight_ih", "bias_ih") and k not in cell.input_extras)
    out = _BPTT.apply(cell, names, mask, xp, len(state), *state, *(p[n] for n in names))
    return out[0], tuple(out[1:])
