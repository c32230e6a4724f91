"""tanh for the hand-written loops, where autograd is off.

torch 2.13's CPU tanh is slow on this machine: 7.6 / 44 / 3970 us for 32 x 128, 64 x 512 and
6400 x 512 floats, against 1.0 / 5.5 / 586 us for numpy's (and 1.6 / 7.7 / 404 for torch's
sigmoid), measured on a quiet 2-core AMD EPYC, 2 threads. So CPU float tensors go through
numpy (which also takes strided views); anything else (GPU, half precision) through torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_NUMPY = (torch.float32, torch.float64)


def tanh(x: Tensor, out: Tensor | None = None) -> Tensor:
    """tanh(x) into ``out`` (a new tensor if None; ``out`` may be x itself). No autograd, and
    numpy's writes do not bump torch's version counter: only for the engines' own buffers,
    never for a tensor autograd has saved.

    Example:
        >>> x = torch.tensor([0.0, 1.0])
        >>> tanh(x, out=x) is x, round(float(x[1]), 4)
        (True, 0.7616)
    """
    out = torch.empty_like(x) if out is None else out
    if all(t.device.type == "cpu" and t.dtype in _NUMPY for t in (x, out)):
        np.tanh(x.detach().numpy(), out=out.detach().numpy())
        return out
    return torch.tanh(x, out=out)


def tanh_(x: Tensor) -> Tensor:
    """tanh in place (see ``tanh``)."""
    return tanh(x, out=x)


class _Tanh(torch.autograd.Function):
    """tanh through ``tanh`` (numpy's on the CPU), differentiable: d tanh = 1 - tanh^2."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = tanh(x)  # a new tensor, nothing writes into it afterwards
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.addcmul(dy, dy * y, y, value=-1)


def tanh_autograd(x: Tensor) -> Tensor:
    """tanh(x) under autograd, as ``torch.tanh`` (same value, gradient and saved output) but
    through the faster CPU tanh above: for whole sequences outside the loops (MUT1's tanh(x)).

    Example:
        >>> x = torch.tensor([0.0, 1.0], requires_grad=True)
        >>> tanh_autograd(x).sum().backward()
        >>> [round(float(g), 4) for g in x.grad]
        [1.0, 0.42]
    """
    return _Tanh.apply(x) if torch.is_grad_enabled() and x.requires_grad else tanh(x)
