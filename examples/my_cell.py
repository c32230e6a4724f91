"""A cell of your own: JANET (van der Westhuizen and Lasenby 2018, "The unreasonable
effectiveness of the forget gate"), here without its beta shift: an LSTM with only the forget
gate, and no separate cell state.

    f  = sigm(W_f x + U_f h + b_f)          forget gate (rows "f" of W_ih, W_hh)
    c~ = tanh(W_c x + U_c h + b_c)          candidate   (rows "c")
    h' = f * h + (1 - f) * c~

Use it with every layer, model and command of rnnkit:

    rnnkit gradcheck examples/my_cell.py:MyCell     # the backward below against autograd
    rnnkit train lm --cell examples/my_cell.py:MyCell --steps 300
    rnnkit.Recurrent("examples/my_cell.py:MyCell", 16, 32, backend="bptt")
"""

from __future__ import annotations

import torch

from rnnkit.cells import Cell


class MyCell(Cell):
    name = "janet"
    description = "JANET: an LSTM with only its forget gate (an example of a cell of yours)"
    gates = 2  # W_ih, W_hh: (2 H, I), (2 H, H); rows f, c
    gate_names = ("f", "c")

    def forward_step(self, xp, state, p):
        """One step; xp = W_ih x + b_ih (B, 2H). Returns (h',) and what the backward needs."""
        (h,) = state
        H = self.hidden_size
        s = xp + self.recurrent(h, p)  # + W_hh h + b_hh
        f, c = torch.sigmoid(s[:, :H]), torch.tanh(s[:, H:])
        d = h - c  # h' = c~ + f (h - c~)
        return (c + f * d,), (f, c, d)

    def backward_step(self, saved, dstate, p):
        """Given dh', the gradients of the pre-activations and of h(t-1)."""
        f, c, d = saved
        (dh,) = dstate
        dhf = dh * f  # dh'/dh directly = f
        ds_f = dhf * d * (1 - f)  # dh'/df = h - c~, sigm' = f (1 - f)
        ds_c = (dh - dhf) * (1 - c * c)  # dh'/dc~ = 1 - f, tanh' = 1 - c~^2
        ds = torch.cat([ds_f, ds_c], dim=1)
        dh_prev = torch.addmm(dhf, ds, p["weight_hh"])  # direct path + through W_hh
        # d(W_ih x + b_ih) = d(W_hh h + b_hh) = ds: rnnkit forms the weight gradients from it
        return ds, ds, (dh_prev,), {}
