"""The reference backend: the cell's step equation in a Python loop, differentiated by autograd."""

from __future__ import annotations

import torch
from torch import Tensor

from ..cells.base import RECURRENT_MASK, Cell, Params, State
from .regularisers import Noise


def run_autograd(
    cell: Cell, xp: Tensor, state: State, p: Params, mask: Tensor | None = None,
    noise: Noise | None = None,
) -> tuple[Tensor, State]:
    """Run ``cell`` over the projected inputs ``xp`` (T, B, K). Returns the sequence of h, in
    which a masked-out step (mask False) carries the state unchanged, and the final state.
    ``noise``: the regularisers' masks (``regularisers.py``), applied as their equations say."""
    hs = []
    zone = ()
    if noise is not None:
        if noise.recurrent is not None:  # the cell's recurrent(h, p) reads m * h
            p = {**p, RECURRENT_MASK: noise.recurrent}
        zone = noise.zone
    # unbind, not xp[t]: indexing makes autograd build a full-size (T, B, K) gradient per step,
    # an O(T^2) backward
    for t, xp_t in enumerate(xp.unbind(0)):
        new = cell.step(xp_t, state, p)
        if zone:  # zoneout: s(t) = s~ + d (s(t-1) - s~)
            new = tuple(n if d is None else torch.lerp(n, s, d[t])
                        for n, s, d in zip(new, state, zone))
        if mask is not None:
            m = mask[t].unsqueeze(1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
        state = new
        hs.append(state[0])
    return torch.stack(hs), state
