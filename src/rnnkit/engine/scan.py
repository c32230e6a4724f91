"""The scan: cells whose gates skip h(t-1) (minGRU, minLSTM), all gates of all steps at once.

Such a cell is the linear recurrence h(t) = a(t) h(t-1) + b(t), with a in [0, 1] and b >= 0
known from the inputs alone: the gates of every step come out of a few whole-sequence tensor
operations, and what is left of the recurrence is a prefix scan over (a, b). Two ways to
evaluate it, the same numbers (tests/test_scan.py):

* ``parallel``: the log-space scan (Heinsen 2023, as Feng et al. 2024 use it). With
  A(t) = sum_{s<=t} log a(s),
      h(t) = e^A(t) h(0) + sum_{s<=t} e^(A(t) - A(s)) b(s)
           = e^A(t) h(0) + exp(A(t) + logcumsumexp(log b - A)(t)),
  a cumsum and a logcumsumexp instead of T steps, differentiated by autograd. The h(0) term
  stays linear, so an initial state of any sign works. e^(A(t) - A(s)) comes from two large
  sums, so float32 loses about eps * |A(t)| in it, and |A| grows with t; the sequence is
  therefore cut into chunks of ``CHUNK`` steps, scanned in parallel inside each chunk and joined
  by the same recurrence over the chunk ends (a loop of T / CHUNK small steps).
* ``sequential``: h(t) = h(t-1) + u(t) (h~(t) - h(t-1)) stepped through time, and its adjoint
  dh(t) = dout(t) + (1 - u(t+1)) dh(t+1) backwards, written out (``_SequentialScan``); the
  gates and their hand-derived backward (cells/minimal.py) run on all steps at once, outside
  the loops. The steps run in about sqrt(T) chunks side by side (``lerp_scan``,
  ``adjoint_scan``), so a Python-level step moves sqrt(T) steps' data: plain products of
  numbers in [0, 1], no logs, rounding like the step-by-step loop. On a CPU this beats the
  log-space scan's dozen transcendental passes over the data (about 6x at T = 1024, B = 32,
  H = 128).

On the CPU with rnnkit's compiled loops (``engine/compiled.py``) the sequential scan runs there
instead (``_CompiledScan``): each (batch, unit) lane is its own recurrence, so the lanes go side
by side and each steps through time with the gates' math fused in, forward and adjoint.

``run_scan`` picks ``parallel`` on a GPU and ``sequential`` on a CPU. A masked-out step
(mask False) carries the state: a = 1, b = 0 there (in log space log b is the most negative
finite number rather than -inf, which keeps the logcumsumexp backward finite).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells.base import Cell, Params, State
from . import compiled
from .bptt import refuse_double_backward

CHUNK = 64  # steps per chunk of the parallel scan (float32 error grows with it: test_scan.py)
METHODS = ("auto", "parallel", "sequential")


def run_scan(
    cell: Cell, xp: Tensor, state: State, p: Params, mask: Tensor | None = None,
    method: str = "auto",
) -> tuple[Tensor, State]:
    """Same contract as ``run_autograd``, for the cells of cells/minimal.py (parallel=True)."""
    if method not in METHODS:
        raise ValueError(f"unknown scan method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "auto":
        method = "parallel" if xp.is_cuda else "sequential"
    (h0,) = state
    if method == "sequential" and compiled.usable(xp, h0):
        hseq = _CompiledScan.apply(cell, mask, xp, h0)
        return hseq, (hseq[-1],)
    if method == "parallel":
        log_a, log_b = cell.log_coefficients(xp)
        if mask is not None:
            off = ~mask.unsqueeze(-1)
            log_a = log_a.masked_fill(off, 0.0)
            log_b = log_b.masked_fill(off, torch.finfo(log_b.dtype).min)
        hseq = log_scan(log_a, log_b, h0)
    else:
        hseq = _SequentialScan.apply(cell, mask, xp, h0)
    return hseq, (hseq[-1],)


def log_scan(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = CHUNK) -> Tensor:
    """h(t) = a(t) h(t-1) + b(t) for all t from log a, log b (T, B, H) and h(0) (B, H), by the
    chunked log-space scan (module docstring)."""
    T, C = log_a.shape[0], max(1, min(chunk, log_a.shape[0]))
    n = -(-T // C)
    if n * C != T:  # pad the last chunk with steps that carry the state
        pad = (0, 0, 0, 0, 0, n * C - T)
        log_a = F.pad(log_a, pad, value=0.0)
        log_b = F.pad(log_b, pad, value=torch.finfo(log_b.dtype).min)
    la = log_a.reshape(n, C, *log_a.shape[1:])
    lb = log_b.reshape(n, C, *log_b.shape[1:])
    A = la.cumsum(1)
    local = torch.exp(A + torch.logcumsumexp(lb - A, 1))  # h inside each chunk, from h = 0
    decay = torch.exp(A)  # how much of the chunk's starting state each step keeps
    ends, keeps = local[:, -1], decay[:, -1]  # select once: per-chunk selects cost a full grad
    starts = [h0]
    for k in range(n - 1):
        starts.append(torch.addcmul(ends[k], keeps[k], starts[-1]))
    h = torch.addcmul(local, decay, torch.stack(starts).unsqueeze(1))
    return h.reshape(n * C, *h.shape[2:])[:T]


def chunk_length(T: int) -> int:
    """Steps per chunk of the sequential scan: about sqrt(T), which balances the C steps inside
    the chunks against the T / C joins between them."""
    return max(1, round(T**0.5))


def lerp_scan(u: Tensor, target: Tensor, h0: Tensor, chunk: int | None = None) -> Tensor:
    """h(t) = h(t-1) + u(t) (target(t) - h(t-1)) for all t, with h(-1) = h0; u, target (T, ...).

    Chunked, so that each Python-level step works on many steps' data at once: the T = K C
    steps are cut into K chunks and swept side by side (one ``lerp`` per step for all K
    chunks, C steps), twice. The first sweep runs each chunk from h = 0 and keeps, besides its
    end, P = the product of (1 - u) over the chunk (how much of its starting state survives),
    both in small (K, ...) buffers; K joins give each chunk's true start, from which the second
    sweep writes every step. All products of numbers in [0, 1] (no division, no log), so it
    rounds like the step-by-step loop. The T - K C steps left over run one by one."""
    T = u.shape[0]
    C = chunk or chunk_length(T)
    K = T // C
    n = K * C
    out = torch.empty_like(target)
    if K:
        Us, Xs, Ls = (v[:n].unflatten(0, (K, C)).unbind(1) for v in (u, target, out))
        end, keep = Us[0] * Xs[0], 1 - Us[0]
        for i in range(1, C):
            torch.lerp(end, Xs[i], Us[i], out=end)
            keep.addcmul_(Us[i], keep, value=-1)  # P (1 - u)
        h = _join(end, keep, h0)
        for i in range(C):
            h = torch.lerp(h, Xs[i], Us[i], out=Ls[i])
    h = out[n - 1] if n else h0
    for h_t, x_t, u_t in zip(out[n:].unbind(0), target[n:].unbind(0), u[n:].unbind(0)):
        h = torch.lerp(h, x_t, u_t, out=h_t)
    return out


def adjoint_scan(dout: Tensor, u: Tensor, chunk: int | None = None) -> Tensor:
    """The adjoint of ``lerp_scan``: dh(t) = dout(t) + (1 - u(t+1)) dh(t+1), dh(T-1) = dout(T-1),
    chunked and swept twice the same way, backwards (the left-over steps at the end first)."""
    T = dout.shape[0]
    C = chunk or chunk_length(T)
    K = T // C
    n = K * C
    c = torch.empty_like(dout)  # c(t) = 1 - u(t+1): the coefficient of dh(t+1) in dh(t)
    torch.sub(u.new_ones(()), u[1:], out=c[:-1])
    c[-1] = 0
    dh = torch.empty_like(dout)
    nxt = dout.new_zeros(dout.shape[1:])
    for t in range(T - 1, n - 1, -1):
        nxt = torch.addcmul(dout[t], c[t], nxt, out=dh[t])
    if K:
        Ds, Cs, Ls = (v[:n].unflatten(0, (K, C)).unbind(1) for v in (dout, c, dh))
        start, keep = Ds[-1].clone(), Cs[-1].clone()
        for i in range(C - 2, -1, -1):
            torch.addcmul(Ds[i], Cs[i], start, out=start)
            keep.mul_(Cs[i])
        d = _join(start.flip(0), keep.flip(0), nxt).flip(0)  # dh at the next chunk's start
        for i in range(C - 1, -1, -1):
            d = torch.addcmul(Ds[i], Cs[i], d, out=Ls[i])
    return dh


def _join(ends: Tensor, keeps: Tensor, first: Tensor) -> Tensor:
    """Starts S of K chunks: S(0) = first, S(k+1) = ends(k) + keeps(k) S(k); ends, keeps
    (K, ...)."""
    S = torch.empty_like(ends)
    Ss, es, ks = S.unbind(0), ends.unbind(0), keeps.unbind(0)
    Ss[0].copy_(first)
    for k in range(len(Ss) - 1):
        torch.addcmul(es[k], ks[k], Ss[k], out=Ss[k + 1])
    return S


class _SequentialScan(torch.autograd.Function):
    """h(t) = h(t-1) + u(t) (h~(t) - h(t-1)) (u, h~ from ``cell.update`` for all steps at once)
    by ``lerp_scan``. Backward: ``adjoint_scan`` for dh, then the cell's hand-derived step
    backward (``input_backward``) for all steps at once. A masked-out step has u = 0 (the
    state carries over), and no gradient reaches its inputs."""

    @staticmethod
    def forward(ctx, cell: Cell, mask: Tensor | None, xp: Tensor, h0: Tensor) -> Tensor:
        u, h_tilde, slope, gate = cell.update(xp)
        if mask is not None:
            u = u.masked_fill(~mask.unsqueeze(-1), 0.0)
        out = lerp_scan(u, h_tilde, h0)
        D = h_tilde  # h~ - h(t-1), in place (no cat of h0 and out)
        D[1:].sub_(out[:-1])
        D[0].sub_(h0)
        ctx.cell, ctx.mask = cell, mask
        ctx.save_for_backward(u, D, slope, *gate)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        refuse_double_backward("scan")
        saved = ctx.saved_tensors
        u = saved[0]
        dh = adjoint_scan(dout, u)
        dxp = ctx.cell.input_backward(saved, dh)
        if ctx.mask is not None:
            dxp.masked_fill_(~ctx.mask.unsqueeze(-1), 0.0)
        return None, None, dxp, torch.addcmul(dh[0], u[0], dh[0], value=-1)


class _CompiledScan(torch.autograd.Function):
    """``_SequentialScan`` in compiled code (engine/loops.cpp's minimal_forward / _backward):
    the same recurrence and hand-derived backward, lane by lane. Keeps xp and the output."""

    @staticmethod
    def forward(ctx, cell: Cell, mask: Tensor | None, xp: Tensor, h0: Tensor) -> Tensor:
        xp, h0 = xp.contiguous(), h0.contiguous()
        mask = None if mask is None else mask.contiguous()
        out = xp.new_empty(*xp.shape[:-1], cell.hidden_size)
        compiled.ops().minimal_forward(xp, h0, cell.compiled_scan, out, mask)
        ctx.cell, ctx.mask = cell, mask
        ctx.save_for_backward(xp, h0, out)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        refuse_double_backward("scan")
        xp, h0, out = ctx.saved_tensors
        dxp, dh0 = torch.empty_like(xp), torch.empty_like(h0)
        compiled.ops().minimal_backward(xp, h0, ctx.cell.compiled_scan, out, dout.contiguous(),
                                        dxp, dh0, ctx.mask)
        return None, None, dxp, dh0
