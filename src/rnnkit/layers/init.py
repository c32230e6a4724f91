"""Initialisations that matter for the vanishing-gradient story (deck 003).

- ``default``: torch.nn's, every weight uniform in +-1/sqrt(hidden).
- ``orthogonal``: each gate block of W_hh orthogonal, so W_hh neither shrinks nor grows
  a vector at the start (its singular values are 1).
- ``identity``: W_hh = I, biases 0, small W_ih: the IRNN of Le et al. 2015 for relu RNNs, which
  copies its state forward by default.
- ``chrono``: Tallec & Ollivier 2018: forget (keep) bias b_f ~ log U(1, T_max - 1), input bias
  -b_f, so the gates start with memory time scales spread up to T_max (here ``chrono_tmax``).
``forget_bias`` (any scheme) then sets the forget gate's bias, e.g. 1.0 (Jozefowicz et al.).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cells import Cell
from ..errors import UserError

SCHEMES = ("default", "orthogonal", "identity", "chrono")
CHRONO_TMAX = 100


def _rows(cell: Cell, gate: str) -> slice:
    k = cell.gate_names.index(gate)
    return slice(k * cell.hidden_size, (k + 1) * cell.hidden_size)


def _keep_gate(cell: Cell, p: dict[str, Tensor], option: str) -> tuple[str, float]:
    """The gate whose bias sets memory length, and its sign: +1 if a high value keeps the
    state (LSTM's f; torch-GRU's z, since h' = (1-z) n + z h), -1 if it overwrites."""
    for gate, sign in cell.keep_gates:
        if gate in cell.gate_names and "bias_ih" in p:
            return gate, sign
    raise ValueError(f"{option} needs a forget/keep gate and biases; cell {cell.name!r} "
                     f"(bias={cell.bias}) has none: leave {option} out, or use a cell with a "
                     "forget gate (lstm, gru ...) and bias=True")


@torch.no_grad()
def initialize(cell: Cell, p: dict[str, Tensor], scheme: str = "default",
               forget_bias: float | None = None, chrono_tmax: int = CHRONO_TMAX) -> None:
    """Initialise one layer-direction's parameters ``p`` in place."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init {scheme!r}: choose one of {', '.join(SCHEMES)}")
    cell.reset_parameters(p)
    H = cell.hidden_size
    if scheme == "orthogonal":
        if "weight_hh" not in p:
            raise UserError(f"init='orthogonal' shapes the recurrent weights W_hh, but cell "
                            f"{cell.name!r} has none (its gates do not read h(t-1)): use "
                            "init='default' or 'chrono'")
        for block in p["weight_hh"].split(H):
            torch.nn.init.orthogonal_(block)
    elif scheme == "identity":
        if cell.gates != 1:
            raise ValueError(f"init='identity' (IRNN) is for single-gate Elman cells, not "
                             f"{cell.name!r}; use 'orthogonal' or 'chrono'")
        p["weight_hh"].copy_(torch.eye(H))
        torch.nn.init.normal_(p["weight_ih"], std=0.001)
        for name in ("bias_ih", "bias_hh"):
            if name in p:
                p[name].zero_()
    elif scheme == "chrono":
        if chrono_tmax < 2:
            raise ValueError(f"chrono_tmax is the longest dependency in steps, >= 2; got "
                             f"{chrono_tmax}")
        gate, sign = _keep_gate(cell, p, "init='chrono'")
        b = torch.log(torch.empty(H).uniform_(1, chrono_tmax - 1))
        _set_bias(cell, p, gate, sign * b)
        if "i" in cell.gate_names:
            _set_bias(cell, p, "i", -b)
    if forget_bias is not None:
        gate, sign = _keep_gate(cell, p, "forget_bias")
        _set_bias(cell, p, gate, torch.full((H,), sign * forget_bias))


def _set_bias(cell: Cell, p: dict[str, Tensor], gate: str, value: Tensor) -> None:
    """Make the total bias b_ih + b_hh of one gate ``value`` (all of it in b_ih)."""
    rows = _rows(cell, gate)
    p["bias_ih"][rows].copy_(value)
    if "bias_hh" in p:  # minGRU/minLSTM have none
        p["bias_hh"][rows].zero_()  # empty where the gate has no recurrent part (MUT1's z)
