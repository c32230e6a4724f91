"""Backpropagation through time written out by hand (decks 000 and 003).

Forward: the recurrent loop, keeping only what each cell's backward needs.
Backward: walk the steps in reverse, each cell's hand-derived step backward gives the
gradients of the pre-activations; the recurrent weight gradient is then one matmul over all
steps, dW_hh = sum_t dz(t)^T h(t-1), instead of T small ones. The input projection
W_ih x + b_ih for every step is one matmul, whose backward is again one matmul.

Two ways to run a cell (see ``cells/base.py``):

* buffered (cells that declare ``saved_shapes``): every step writes h and what it saves
  straight into preallocated (T, B, ...) buffers, and the backward first turns them into
  per-step coefficients with a few whole-sequence ops, so each step runs a handful of ops.
  On the CPU the Python cost per op (a few us) is what limits small sizes. Memory: only x,
  h and what the cell saves (an LSTM: c) are kept; the input projection and the gates are
  recomputed for all steps at once in the backward (two big products, no per-step cost).
* generic (``forward_step`` / ``backward_step``): each step returns fresh tensors; h is
  stacked after the loop into a pooled buffer, what a step saved is kept as it came.

Regularisers (``regularisers.py``): recurrent dropout per sequence reaches the loops as
q[RECURRENT_MASK] (the buffered cells multiply h(t-1) by it before their product, and the
product's share of dh(t-1) after) and zoneout as q["zone"] (the compiled loops); the generic
loop applies both itself. dW_hh then reads m * h(t-1).

Where the cell's two loops exist compiled (``engine/loops.cpp``, built on first use by
``engine/compiled.py``: every buffered cell, float32/float64 on the CPU), ``bptt_setup`` says
so ("compiled" in its result) and each whole loop runs there, the same steps with no Python
between them; the Python loops below stay the fallback and the reference the tests compare with.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cells import scratch
from ..cells.base import PACKED_WEIGHT_HH, RECURRENT_MASK, Cell, Params, State
from ..cells.matmul import pack, weight_grad
from .regularisers import Noise


class _BPTT(torch.autograd.Function):
    """``inputs`` is x (T, B, I) for a buffered cell, which projects it inside (weight_ih and
    bias_ih are then among the parameters), else the projected inputs xp."""

    @staticmethod
    def forward(ctx, cell: Cell, names: tuple[str, ...], mask, noise: Noise | None, inputs,
                n_states: int, *tensors):
        state = tuple(tensors[:n_states])
        p = dict(zip(names, tensors[n_states:]))
        buffered = cell.saved_shapes() is not None
        run = _forward_buffered if buffered else _forward_generic
        # hs holds h(0) .. h(T), so that h(t-1) for every step is a view of it
        hs, final, columns = run(cell, inputs, state, p, mask, noise)
        if not buffered:  # what each step saved, as it returned it: stacking costs a copy
            ctx.steps, columns = columns, []
        ctx.cell, ctx.names, ctx.n_states, ctx.n_saved = cell, names, n_states, len(columns)
        ctx.buffered, ctx.has_mask, ctx.noise = buffered, mask is not None, noise
        # buffered: x, not xp (G times wider), is kept, as the autograd loop keeps it too
        # h is saved unless the cell rebuilds it from what it saved (not under zoneout)
        keeps_h = not buffered or cell.saves_h or (noise is not None and noise.zoned)
        ctx.save_for_backward(inputs if buffered else None, hs if keeps_h else None, *state,
                              *columns,
                              *tensors[n_states:], *(() if mask is None else (mask,)))
        # a copy, not a view of hs: the caller may modify the output in place (dropout, +=),
        # which autograd refuses on a view a Function returns
        hs = scratch.empty(hs[1:].shape, hs).copy_(hs[1:])
        return (hs, *final)

    @staticmethod
    def backward(ctx, dhseq, *dfinal):
        refuse_double_backward("bptt")
        cell: Cell = ctx.cell
        x, hs, *rest = ctx.saved_tensors
        state0, rest = tuple(rest[: ctx.n_states]), rest[ctx.n_states :]
        columns, rest = rest[: ctx.n_saved], rest[ctx.n_saved :]
        mask = rest.pop() if ctx.has_mask else None
        p = dict(zip(ctx.names, rest))
        noise: Noise | None = ctx.noise
        m = None if noise is None else noise.recurrent
        if ctx.buffered:
            q = _with_noise(cell.bptt_setup(p), noise)
            q["x"] = x
            # h(t-1) for every step
            if cell.saves_h:
                h_prev = hs[:-1]
            else:  # (hs: kept under zoneout, which o tanh(c) cannot rebuild)
                q["hs"] = hs
                h_prev = cell.hidden_states(columns, state0, mask, q)
            dxp, dhp, dstate, grads = _backward_buffered(cell, q, hs, h_prev, state0, columns,
                                                         mask, dhseq, dfinal)
            if q.get("db") is not None and "bias_ih" in p:  # summed inside the compiled loop
                grads["bias_ih"] = q["db"]
            pairs = cell.buffered_recurrent_inputs(q, columns, h_prev)
        else:
            q = {}
            h_prev = hs[:-1]
            dxp, dhp, dstate, grads = _backward_generic(cell, hs[1:], state0, ctx.steps, p,
                                                        mask, dhseq, dfinal, noise)
            pairs = cell.recurrent_inputs(_stacked(cell, ctx.steps), h_prev)
        # the weight gradients, each one product over all steps
        dhp2 = dhp.reshape(-1, dhp.shape[-1])
        xh = q.get("xh") if dhp is dxp else None
        if xh is not None:  # [x, h(t-1)] side by side: dW_ih and dW_hh in one product
            dw = weight_grad(dhp2, xh.view(-1, xh.shape[-1]))
            grads["weight_ih"] = dw[:, : x.shape[-1]].contiguous()
            grads["weight_hh"] = dw[:, x.shape[-1] :].contiguous()
        if ctx.buffered:
            dinputs = cell.project_backward(x, dxp, p, grads, ctx.needs_input_grad[4])
        else:
            dinputs = dxp
        if "weight_hh" in p and "weight_hh" not in grads:
            dw = torch.zeros_like(p["weight_hh"])
            for rows, U in pairs:
                if m is not None:  # W_hh read m * h(t-1) (an xh holds it so already)
                    U = U * m
                U2 = U.reshape(-1, U.shape[-1])
                if rows == slice(None):
                    dw += weight_grad(dhp2, U2)
                else:
                    dw[rows] += weight_grad(dhp2[:, rows], U2)
            grads["weight_hh"] = dw
        if "bias_hh" in p and "bias_hh" not in grads:  # (a cell may have formed it)
            # where the recurrent pre-activations are the input ones or their leading blocks
            # (an LSTM; MUT1's n, r) db_hh is db_ih's head: a copy (the two parameters' .grad
            # must not share storage), not a second sum
            db_ih = grads.get("bias_ih")
            head = db_ih is not None and _is_head(dhp, dxp)
            grads["bias_hh"] = db_ih[: dhp.shape[-1]].clone() if head else dhp2.sum(0)
        return (None, None, None, None, dinputs, None, *dstate,
                *(grads.get(n) for n in ctx.names))


def _is_head(a: Tensor, b: Tensor) -> bool:
    """a is b[..., :k] (the same memory, the leading k of b's last dimension)."""
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape[:-1] == b.shape[:-1]
                      and a.stride() == b.stride() and a.shape[-1] <= b.shape[-1])


def _with_noise(q: Params, noise: Noise | None) -> Params:
    """``bptt_setup``'s dict with the regularisers' masks, as the cells' loops read them."""
    if noise is not None:
        q = dict(q)
        if noise.recurrent is not None:
            q[RECURRENT_MASK] = noise.recurrent.contiguous()
        if noise.zoned:  # one per state, for the compiled ops (zone_h, zone_c)
            q["zone"] = tuple(None if d is None else d.contiguous() for d in noise.zone)
    return q


def _forward_buffered(cell: Cell, x: Tensor, state: State, p: Params, mask: Tensor | None,
                      noise: Noise | None):
    T, B = x.shape[0], x.shape[1]
    q = _with_noise(cell.bptt_setup(p), noise)
    xp = cell.project(x, q)
    # pooled buffers: the last call's, once its backward has freed them (no page faults)
    hs = scratch.empty((T + 1, B, cell.hidden_size), xp)
    hs[0] = state[0]
    columns = [scratch.empty((T, B, *shape), xp) for shape in cell.saved_shapes()]
    if "compiled" in q:  # the cell's loops compiled (engine/loops.cpp) run here
        mask = None if mask is None else mask.contiguous()
        state = tuple(s.contiguous() for s in state)
        final = cell.forward_compiled(xp, state, q, hs, columns, mask)
        return hs, tuple(s.clone() for s in final), columns
    assert "zone" not in q, "zoneout runs in the compiled loops only (run.bptt_lacks)"
    masks = mask.unsqueeze(-1).unbind(0) if mask is not None else None
    slots = zip(xp.unbind(0), hs[1:].unbind(0), *(c.unbind(0) for c in columns))
    for t, (x_t, h_t, *saved_t) in enumerate(slots):
        new = cell.forward_into(x_t, state, q, h_t, saved_t)
        if masks is not None:  # a masked-out step carries its state (written into the slots)
            new = tuple(torch.where(masks[t], n, s, out=n) for n, s in zip(new, state))
        state = new
    return hs, tuple(s.clone() for s in state), columns


def _backward_buffered(cell, q, hs, h_prev, state0, columns, mask, dhseq, dfinal):
    T, x = h_prev.shape[0], q["x"]
    if hs is not None:
        q["h"] = hs[1:]  # h(t) of every step, for a cell whose backward reads its own output
    xp = cell.project(x, q) if cell.backward_reads_xp else None
    dstate = (dhseq[-1] + dfinal[0], *(d.clone() for d in dfinal[1:]))
    if "compiled" in q:  # the whole loop in compiled code
        dstate = tuple(d.contiguous() for d in dstate)
        state0 = tuple(s.contiguous() for s in state0)
        mask = None if mask is None else mask.contiguous()
        dz, dstate = cell.backward_compiled(columns, xp, h_prev, state0, q,
                                            dhseq.contiguous(), dstate, mask)
        dxp, dhp, dextras = cell.backward_finish(dz, q)
        return dxp, dhp, dstate, dict(dextras)
    steps, dz = cell.backward_prepare(columns, xp, h_prev, state0, q)
    # what each step adds to dh(t-1) besides the recurrence: the loss's gradient at t-1
    ext = (dhseq.new_zeros(dhseq.shape[1:]), *dhseq.unbind(0)[:-1])
    masks = None if mask is None else mask.unsqueeze(-1).to(h_prev.dtype).unbind(0)
    per_step = list(zip(*(s.unbind(0) for s in steps)))
    for t in range(T - 1, -1, -1):
        if masks is None:
            dstate = cell.backward_into(per_step[t], dstate, ext[t], q)
        else:  # a masked-out step passed its state through unchanged
            m = masks[t]
            carry = [d * (1 - m) for d in dstate]
            dprev = cell.backward_into(per_step[t], tuple(d * m for d in dstate), ext[t], q)
            dstate = tuple(a.add_(b) for a, b in zip(dprev, carry))
    dxp, dhp, dextras = cell.backward_finish(dz, q)
    return dxp, dhp, dstate, dict(dextras)


# ---- generic: forward_step / backward_step, stacked after the loop --------------------------
def _forward_generic(cell: Cell, xp: Tensor, state: State, p: Params, mask: Tensor | None,
                     noise: Noise | None):
    hs, saved = [], []
    h0 = state[0]
    zone = () if noise is None else noise.zone
    if noise is not None and noise.recurrent is not None:  # recurrent(h, p) reads m * h
        p = {**p, RECURRENT_MASK: noise.recurrent}
    if "weight_hh" in p:  # packed once, not reordered by every step's product
        p = {**p, PACKED_WEIGHT_HH: pack(p["weight_hh"])}
    for t in range(xp.shape[0]):
        new, s = cell.forward_step(xp[t], state, p)
        if zone:  # zoneout: s(t) = s~ + d (s(t-1) - s~)
            new = tuple(n if d is None else torch.lerp(n, o, d[t])
                        for n, o, d in zip(new, state, zone))
        if mask is not None:
            m = mask[t].unsqueeze(1)
            new = tuple(torch.where(m, n, o) for n, o in zip(new, state))
        state = new
        hs.append(state[0])
        saved.append(s)
    # h stacked into a pooled buffer (a fresh one faults every page in), h(0) ahead as in the
    # buffered loop, so that h(t-1) of every step is a view: dW_hh's one product reads it
    out = scratch.empty((len(hs) + 1, *hs[0].shape), hs[0])
    out[0] = h0
    torch.stack(hs, out=out[1:])
    return out, state, saved


def _stacked(cell: Cell, steps: list[tuple]) -> list[Tensor]:
    """What the steps saved, stacked over time, for a cell whose ``recurrent_inputs`` reads
    it (Cell's own reads only h(t-1): nothing is copied for it)."""
    if type(cell).recurrent_inputs is Cell.recurrent_inputs:
        return []
    return [torch.stack(col) for col in zip(*steps)]


def _backward_generic(cell, hseq, state0, steps, p, mask, dhseq, dfinal, noise):
    T = hseq.shape[0]
    zone = () if noise is None else noise.zone
    drop = None if noise is None else noise.recurrent
    dstate = tuple(dfinal)
    dxp = dhp = None
    dextras: dict[str, Tensor] = {}
    for t in range(T - 1, -1, -1):
        dstate = (dstate[0] + dhseq[t], *dstate[1:])
        if mask is not None:  # a masked-out step passed its state through unchanged
            m = mask[t].unsqueeze(1).to(hseq.dtype)
            carry = tuple(d * (1 - m) for d in dstate)
            dstate = tuple(d * m for d in dstate)
        if zone:  # d ds(t) reaches s(t-1) directly, (1 - d) ds(t) the cell's s~
            through = tuple(ds if d is None else d[t] * ds for ds, d in zip(dstate, zone))
            dstate = tuple(ds if d is None else ds - d[t] * ds for ds, d in zip(dstate, zone))
        dx, dh, dprev, dext = cell.backward_step(steps[t], dstate, p)
        if drop is not None:  # the cell's W_hh^T dh, times the mask W_hh read h(t-1) through
            dprev = (dprev[0] - (dh @ p["weight_hh"]) * (1 - drop), *dprev[1:])
        if zone:
            dprev = tuple(a if d is None else a + b for a, b, d in zip(dprev, through, zone))
        if dxp is None:
            dxp = scratch.empty((T, *dx.shape), dx)
            dhp = dxp if dh is dx else scratch.empty((T, *dh.shape), dh)
        dxp[t] = dx
        if dhp is not dxp:
            dhp[t] = dh
        for k, v in dext.items():
            dextras[k] = v if k not in dextras else dextras[k] + v
        dstate = dprev if mask is None else tuple(a + b for a, b in zip(dprev, carry))
    return dxp, dhp, dstate, dextras


def refuse_double_backward(backend: str) -> None:
    """A hand-written backward is not itself differentiable: say so, and what to use instead,
    when autograd asks for it (``create_graph=True``: gradient penalties, meta-learning)."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"rnnkit's {backend!r} backend has a hand-written backward that cannot be "
            "differentiated again (create_graph=True); for second derivatives build the layer "
            "with backend='native' (torch's kernels) or backend='autograd'")


def run_bptt(
    cell: Cell, x: Tensor, state: State, p: Params, mask: Tensor | None = None,
    noise: Noise | None = None,
) -> tuple[Tensor, State]:
    """Same contract as ``run_autograd``, but from the inputs x (T, B, I) themselves: a buffered
    cell projects them inside (so only x is kept), any other cell outside."""
    if cell.saved_shapes() is not None:
        inputs, p = cell.bptt_inputs(x, p)
        names = tuple(p)
    else:
        names = tuple(k for k in p
                      if k not in ("weight_ih", "bias_ih") and k not in cell.input_extras)
        inputs = cell.input_projection(x, p)
    out = _BPTT.apply(cell, names, mask, noise, inputs, len(state), *state,
                      *(p[n] for n in names))
    return out[0], tuple(out[1:])
