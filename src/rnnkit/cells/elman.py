"""The Elman recurrent neuron (deck 000): a(t) = f(W_ax x(t) + W_aa a(t-1) + b).

Backward, as deck 000 derives it for tanh: with a = f(z),
    dz = da * f'(z),   dW_ax += dz x^T,   dW_aa += dz a(t-1)^T,   da(t-1) = W_aa^T dz.
f' is written in terms of the output a, so only a is kept: tanh' = 1 - a^2,
sigmoid' = a (1 - a), relu' = [a > 0].
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .base import Cell, Params, State
from .matmul import linear


class ElmanTanh(Cell):
    """a(t) = tanh(W_ax x(t) + W_aa a(t-1) + b).

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("rnn_tanh", 3, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> (a,) = cell.step(torch.randn(2, 4), (torch.zeros(2, 4),), p)
        >>> a.shape
        torch.Size([2, 4])
    """

    name: ClassVar[str] = "rnn_tanh"
    native_mode: ClassVar[str | None] = "RNN_TANH"

    def activation(self, z: Tensor) -> Tensor:
        return torch.tanh(z)

    def derivative(self, a: Tensor) -> Tensor:
        return 1 - a * a

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        a = self.activation(xp + self.recurrent(state[0], p))
        return (a,), (a,)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        (a,) = saved
        dz = dstate[0] * self.derivative(a)
        return dz, dz, (linear(dz, p["weight_hh"].t()),), {}


class ElmanReLU(ElmanTanh):
    """a(t) = relu(W_ax x(t) + W_aa a(t-1) + b); with identity W_aa this is the IRNN."""

    name: ClassVar[str] = "rnn_relu"
    native_mode: ClassVar[str | None] = "RNN_RELU"

    def activation(self, z: Tensor) -> Tensor:
        return torch.relu(z)

    def derivative(self, a: Tensor) -> Tensor:
        return (a > 0).to(a.dtype)


class ElmanSigmoid(ElmanTanh):
    """a(t) = sigmoid(W_ax x(t) + W_aa a(t-1) + b): the neuron whose gradient vanishes fastest."""

    name: ClassVar[str] = "rnn_sigmoid"
    native_mode: ClassVar[str | None] = None

    def activation(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def derivative(self, a: Tensor) -> Tensor:
        return a * (1 - a)


CELLS = (ElmanTanh, ElmanReLU, ElmanSigmoid)
