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
* ``sequential``: h(t) = a(t) h(t-1) + b(t) as one fused multiply-add per step, and its adjoint
  dh(t) = dout(t) + a(t+1) dh(t+1) backwards, written out (``_SequentialScan``); the gates and
  their hand-derived backward (cells/minimal.py) run on all steps at once, outside the loops.
  On a CPU the B x H lanes already fill the vector units, so this beats the log-space scan's
  dozen transcendental passes over the data (about 6x at T = 1024, B = 32, H = 128).

``run_scan`` picks ``parallel`` on a GPU and ``sequential`` on a CPU. A masked-out step
(mask False) carries the state: a = 1, b = 0 there (in log space log b is the most negative
finite number rather than -inf, which keeps the logcumsumexp backward finite).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells.base import Cell, Params, State

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


class _SequentialScan(torch.autograd.Function):
    """h(t) = a(t) h(t-1) + b(t) with a = 1 - u, b = u h~ (u, h~ from ``cell.update`` for all
    steps at once), one fused multiply-add per step. Backward: the adjoint scan
    dh(t) = dout(t) + a(t+1) dh(t+1) run backwards, then the cell's hand-derived step backward
    (``input_backward``) for all steps at once. A masked-out step has u = 0: a = 1, b = 0, and
    no gradient reaches its inputs."""

    @staticmethod
    def forward(ctx, cell: Cell, mask: Tensor | None, xp: Tensor, h0: Tensor) -> Tensor:
        u, h_tilde, slope, gate = cell.update(xp)
        if mask is not None:
            u = u.masked_fill(~mask.unsqueeze(-1), 0.0)
        a, b = 1 - u, u * h_tilde
        out = torch.empty_like(b)
        h = h0
        for t in range(b.shape[0]):
            h = torch.addcmul(b[t], a[t], h, out=out[t])
        D = h_tilde.sub_(torch.cat([h0.unsqueeze(0), out[:-1]]))  # h~ - h(t-1)
        ctx.cell = cell
        ctx.save_for_backward(u, D, slope, *gate)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        saved = ctx.saved_tensors
        a = 1 - saved[0]
        dh = torch.empty_like(dout)
        dh[-1] = dout[-1]
        for t in range(dout.shape[0] - 2, -1, -1):
            torch.addcmul(dout[t], a[t + 1], dh[t + 1], out=dh[t])
        return None, None, ctx.cell.input_backward(saved, dh), a[0] * dh[0]
