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

from . import kernels, scratch
from .activations import tanh
from .base import RECURRENT_MASK, Cell, Params, State
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
    description: ClassVar[str] = "Elman RNN, tanh activation (torch.nn.RNN)"
    compiled_activation: ClassVar[int] = 0  # f in engine/loops.cpp: tanh, relu, sigmoid
    compiled_loop: ClassVar[bool] = True
    bptt_regularisers: ClassVar[tuple[str, ...]] = ("recurrent_dropout",)
    native_mode: ClassVar[str | None] = "RNN_TANH"

    def activation(self, z: Tensor) -> Tensor:
        return torch.tanh(z)

    def derivative(self, a: Tensor) -> Tensor:
        return 1 - a * a

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        a = self.activation(xp + self.recurrent(state[0], p))
        return (a,), (a,)

    # ---- bptt, buffered: two ops a step each way, nothing kept beyond x and a ----------------
    # f' is a function of the output a (module docstring), so the backward recomputes nothing:
    # not even W_ax x (backward_reads_xp is False).
    backward_reads_xp: ClassVar[bool] = False
    can_keep: ClassVar[bool] = True  # nothing to recompute: recompute=False changes nothing

    def activate_into(self, z: Tensor, out: Tensor) -> Tensor:
        return tanh(z, out=out)

    def saved_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ()

    def bptt_setup(self, p: Params) -> Params:
        w, b_ih, b_hh = p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")
        q = {"w_ih": p["weight_ih"], "b_x": None if b_ih is None else b_ih + b_hh}
        return {**q, **self.recurrent_weights(w=w)}

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        a_in = self.dropped(state[0], q)
        return (self.activate_into(linear(a_in, q["w"], xp), h),)  # a = f(xp + W_aa a)

    def backward_prepare(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                         state0: State, q: Params):
        k = self.derivative(q["h"])  # f'(z) of every step, from a
        dz = torch.empty_like(k)
        return (k, dz), dz

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        k, dz = step
        torch.mul(dstate[0], k, out=dz)  # dz = da f'(z)
        return (self.recurrent_backward(dz, q, dh_ext),)  # da(t-1) = W_aa^T dz (+ the loss's)

    # the same two loops compiled (engine/loops.cpp), where they can run
    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        kernels.ops().elman_forward(xp, q["w"], hs, self.compiled_activation, mask,
                                     q.get(RECURRENT_MASK))
        return (hs[-1],)

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        dz = scratch.empty(h_prev.shape, h_prev)
        (dh,) = dstate
        kernels.ops().elman_backward(q["h"], q["w"], self.compiled_activation, dz,
                                      dhseq, dh, mask, q.get(RECURRENT_MASK))
        return dz, (dh,)


class ElmanReLU(ElmanTanh):
    """a(t) = relu(W_ax x(t) + W_aa a(t-1) + b); with identity W_aa this is the IRNN."""

    name: ClassVar[str] = "rnn_relu"
    description: ClassVar[str] = "Elman RNN, ReLU activation (the IRNN with identity W_hh)"
    compiled_activation: ClassVar[int] = 1
    native_mode: ClassVar[str | None] = "RNN_RELU"

    def activation(self, z: Tensor) -> Tensor:
        return torch.relu(z)

    def derivative(self, a: Tensor) -> Tensor:
        return (a > 0).to(a.dtype)

    def activate_into(self, z: Tensor, out: Tensor) -> Tensor:
        return torch.clamp(z, min=0, out=out)


class ElmanSigmoid(ElmanTanh):
    """a(t) = sigmoid(W_ax x(t) + W_aa a(t-1) + b): the neuron whose gradient vanishes fastest."""

    name: ClassVar[str] = "rnn_sigmoid"
    description: ClassVar[str] = "Elman RNN, sigmoid activation (its gradient vanishes fastest)"
    compiled_activation: ClassVar[int] = 2
    native_mode: ClassVar[str | None] = None

    def activation(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def derivative(self, a: Tensor) -> Tensor:
        return a * (1 - a)

    def activate_into(self, z: Tensor, out: Tensor) -> Tensor:
        return torch.sigmoid(z, out=out)


CELLS = (ElmanTanh, ElmanReLU, ElmanSigmoid)
