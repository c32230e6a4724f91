"""The recurrent cell found by neural architecture search (Zoph & Le 2017, deck 003), with the
equations of TensorFlow's former ``NASCell`` (tf.contrib.rnn / tfa.rnn, without projection).

Eight blocks of hidden_size are read from x and from h; TensorFlow's split k is
x_k = W_ik x + b_ik and m_k = W_hk h + b_hk (torch-style: TensorFlow keeps one bias, on m):

    layer 1:  a0 = sigm(x0 + m0)   a1 = relu(x1 + m1)   a2 = sigm(x2 + m2)   a3 = relu(x3 * m3)
              a4 = tanh(x4 + m4)   a5 = sigm(x5 + m5)   a6 = tanh(x6 + m6)   a7 = sigm(x7 + m7)
    layer 2:  b0 = tanh(a0 a1)     b1 = tanh(a2 + a3)   b2 = tanh(a4 a5)     b3 = sigm(a6 + a7)
    cell:     e = tanh(b0 + c),    c' = e b1
    layer 3:  q = tanh(b2 + b3),   h' = tanh(c' q)

Note a3: the input and recurrent parts multiply, so here dxp and dhp differ.

**Block order.** The rows of ``weight_ih``/``weight_hh`` (and the biases) hold the blocks
sorted by activation: tanh (4, 6), sigmoid (0, 2, 5, 7), relu (1, 3), i.e. rows k*H:(k+1)*H hold
TensorFlow's split ``ORDER[k]``. Then each activation is one op over contiguous rows, and the
layer-2 pairs fall on stride-2 views: (a4, a0) times (a5, a1), and (a6, a2) plus (a7, a3).

**Backward** of one step, given dh' and dc' (bottom-up through the lines above):
    du = dh' (1 - h'^2),   dc = dc' + du q,   dq~ = du c' (1 - q^2)   (= db2 = db3)
    de~ = dc b1 (1 - e^2)  (= db0 = dc(t-1)),  db1 = dc e
    db0~ = db0 (1 - b0^2),  db1~ = db1 (1 - b1^2),  db2~ = db2 (1 - b2^2),  db3~ = db3 b3 (1 - b3)
    da0 = db0~ a1,  da1 = db0~ a0,  da4 = db2~ a5,  da5 = db2~ a4,  da2 = da3 = db1~,
    da6 = da7 = db3~;  then through each block's activation (a3's relu: [a3 > 0]);
    block 3's product: dx3 = da3~ m3,  dm3 = da3~ x3;   dh(t-1) = W_hh^T dm
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .base import Cell, Params, State
from .matmul import linear

ORDER = (4, 6, 0, 2, 5, 7, 1, 3)  # TensorFlow's split held by each row block, in order


def _tanh_backward(dy: Tensor, y: Tensor) -> Tensor:
    """dy (1 - y^2) for y = tanh(.)."""
    return torch.addcmul(dy, dy * y, y, value=-1)


class NAS(Cell):
    """The NAS cell (TensorFlow's ``NASCell`` equations), state (h, c); block order ``ORDER``.

    Example:
        >>> import torch
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("nas", 3, 4)
        >>> cell.parameter_shapes()["weight_hh"]
        (32, 4)
        >>> p = {k: torch.randn(s) for k, s in cell.parameter_shapes().items()}
        >>> h, c = cell.step(torch.randn(2, 32), cell.zero_state(2, torch.zeros(1)), p)
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    name: ClassVar[str] = "nas"
    gates: ClassVar[int] = 8
    gate_names: ClassVar[tuple[str, ...]] = tuple(f"a{k}" for k in ORDER)
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = ()
    num_states: ClassVar[int] = 2

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        h, c = state
        B, H = h.shape
        hp = self.recurrent(h, p)
        x3, m3 = xp[:, 7 * H :], hp[:, 7 * H :]
        z = xp[:, : 7 * H] + hp[:, : 7 * H]
        act = torch.cat([torch.tanh(z[:, : 2 * H]), torch.sigmoid(z[:, 2 * H : 6 * H]),
                         torch.relu(z[:, 6 * H :]), torch.relu(x3 * m3)], dim=1)
        a = act.view(B, 8, H)
        b20 = torch.tanh(a[:, 0:3:2] * a[:, 4:7:2])  # (b2, b0) = tanh((a4, a0) * (a5, a1))
        s31 = a[:, 1:4:2] + a[:, 5:8:2]  # (a6 + a7, a2 + a3)
        b3, b1 = torch.sigmoid(s31[:, 0]), torch.tanh(s31[:, 1])
        e = torch.tanh(b20[:, 1] + c)
        c_new = e * b1
        q = torch.tanh(b20[:, 0] + b3)
        h_new = torch.tanh(c_new * q)
        return (h_new, c_new), (act, x3, m3, b20, b3, b1, e, q, c_new, h_new)

    def backward_step(self, saved: tuple, dstate: State, p: Params):
        act, x3, m3, b20, b3, b1, e, q, c_new, h_new = saved
        dh, dc = dstate
        B, H = dh.shape
        a = act.view(B, 8, H)
        du = _tanh_backward(dh, h_new)
        dc = torch.addcmul(dc, du, q)
        dq = _tanh_backward(du * c_new, q)  # = db2 = db3
        de = _tanh_backward(dc * b1, e)  # = db0 = dc(t-1)
        db20 = _tanh_backward(torch.stack([dq, de], dim=1), b20)
        da = dh.new_empty(B, 8, H)
        torch.mul(db20, a[:, 4:7:2], out=da[:, 0:3:2])  # (da4, da0)
        torch.mul(db20, a[:, 0:3:2], out=da[:, 4:7:2])  # (da5, da1)
        torch.mul(dq, b3 - b3 * b3, out=da[:, 1])  # da6 = db3~
        da[:, 3] = _tanh_backward(dc * e, b1)  # da2 = db1~
        da[:, 5:8:2] = da[:, 1:4:2]  # (da7, da3)
        dz = da.view(B, 8 * H)
        t, s, r = dz[:, : 2 * H], dz[:, 2 * H : 6 * H], dz[:, 6 * H :]
        t.addcmul_(t * act[:, : 2 * H], act[:, : 2 * H], value=-1)
        sa = act[:, 2 * H : 6 * H]
        s.mul_(torch.addcmul(sa, sa, sa, value=-1))
        r.mul_(act[:, 6 * H :] > 0)
        dhp = dz.clone()
        dhp[:, 7 * H :] *= x3
        dz[:, 7 * H :] *= m3
        return dz, dhp, (linear(dhp, p["weight_hh"].t()), de), {}


CELLS = (NAS,)
