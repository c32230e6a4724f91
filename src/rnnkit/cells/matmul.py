"""Matrix products for the engines: oneDNN on the CPU where it beats torch's default BLAS.

torch's CPU ``addmm``/``mm`` call MKL, which on some CPUs (AMD EPYC here) runs its AVX2 code:
about 95 GFLOP/s a core against about 200 for oneDNN's JIT kernels, the ones ``nn.LSTM``
uses (measured in FACTS.md's set-up: B = 64, H = 256, one thread). So float32 CPU products go
through ``torch.ops.mkldnn._linear_pointwise`` (oneDNN's inner-product primitive, plain dense
tensors in and out) when this build has it; anything else (float64, GPU, a build without
oneDNN) takes the usual ``torch.addmm``. Results equal ``addmm`` up to float32 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..tracing import tracing
from . import kernels


def _probe() -> bool:
    try:
        x, w = torch.ones(2, 3), torch.ones(4, 3)
        y = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
        z = torch.ops.mkldnn._linear_pointwise.binary(x, y, w, None, "add")
        wp = torch.ops.mkldnn._reorder_linear_weight(w)  # pack(): a blocked w
        u = torch.ops.mkldnn._linear_pointwise(x, wp, None, "none", [], "")
        return bool((y == 3).all() and (z == 6).all() and (u == 3).all())
    except (AttributeError, RuntimeError):
        return False


ONEDNN = torch.backends.mkldnn.is_available() and _probe()


def _onednn(*tensors: Tensor) -> bool:
    # not while a tool records the ops: Inductor cannot lower these, ONNX has no operator
    return ONEDNN and not tracing() and all(t.dtype == torch.float32 and t.device.type == "cpu"
                                            for t in tensors)


def linear(x: Tensor, w: Tensor, add: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """``add + x @ w.T + bias`` for 2-D x (M, K) and w (N, K); ``add`` (M, N) and ``bias``
    (N,) optional (the bias inside the product: no second pass over the result). No autograd:
    for the engines' hand-written loops."""
    if _onednn(x, w):
        if add is None:
            return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")
        return torch.ops.mkldnn._linear_pointwise.binary(x, add, w, bias, "add")
    y = x @ w.t() if add is None else torch.addmm(add, x, w.t())
    return y if bias is None else y.add_(bias)


def pack(w: Tensor) -> Tensor:
    """w (N, K) in oneDNN's blocked layout, for many ``linear(x, w)`` calls with the same w (a
    recurrent loop): saves the reorder each call does otherwise (10-20 % of a step's product at
    B = 32-64, H = 128-512). Returns w itself where ``linear`` does not take oneDNN."""
    return torch.ops.mkldnn._reorder_linear_weight(w) if _onednn(w) else w


def weight_grad(d: Tensor, u: Tensor) -> Tensor:
    """dW = d^T u, summed over the rows (every step and batch entry): d (N, G), u (N, K).
    BLAS takes the transposed operand as it is: for these tall, thin products (N = T B) that
    beats transposing both for oneDNN's inner product by 1.3-2.5x (the copies cost more than
    they save; measured at N = 3200-64000, G = 512-4096, K = 64-1024 on the 2-core AVX-512
    EPYC). oneDNN's matmul reads d transposed too, and is 5-14 % faster than BLAS there: it
    runs where the compiled loops are loaded (``loops.cpp``'s weight_grad) and both are dense."""
    ops = kernels.loaded()
    if ops is not None and _onednn(d, u) and d.is_contiguous() and u.is_contiguous():
        return ops.weight_grad(d, u)
    return d.t() @ u


class _Linear(torch.autograd.Function):
    """y = x W^T + b with every product (forward, dx, dW) through ``linear``."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        y = linear(x, w)
        return y if b is None else y.add_(b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = linear(dy, w.t().contiguous()) if ctx.needs_input_grad[0] else None
        dw = weight_grad(dy, x) if ctx.needs_input_grad[1] else None
        db = dy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def project(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.linear(x, w, b)`` for x of any leading shape, differentiable; on the oneDNN path when
    ``linear`` would take it (the input projection of all steps at once)."""
    if not _onednn(x, w):
        return torch.nn.functional.linear(x, w, b)
    y = _Linear.apply(x.reshape(-1, x.shape[-1]), w, b)
    return y.view(*x.shape[:-1], w.shape[0])
