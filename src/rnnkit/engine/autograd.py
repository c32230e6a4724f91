"""The reference backend: the cell's step equation in a Python loop, differentiated by autograd."""

from __future__ import annotations

import torch
from torch import Tensor

from ..cells.base import Cell, Params, State


def run_autograd(
    cell: Cell, xp: Tensor, state: State, p: Params, mask: Tensor | None = None
) -> tuple[Tensor, State]:
    """Run ``cell`` over the projected inputs ``xp`` (T, B, K). Returns the sequence of h, in
    which a masked-out step (mask False) carries the state unchanged, and the final state."""
    hs = []
    # unbind, not xp[t]: indexing makes autograd build a full-size (T, B, K) gradient per step,
    # an O(T^2) backward
    for t, xp_t in enumerate(xp.unbind(0)):
        new = cell.step(xp_t, state, p)
        if mask is not None:
            m = mask[t].unsqueeze(1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
        state = new
        hs.append(state[0])
    return torch.stack(hs), state
