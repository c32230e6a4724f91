"""Parameter counts, as Keras' ``summary()``, with deck 001's textbook count beside torch's.

Deck 001 asks how many parameters an LSTM with n inputs and m units has: the textbook answer
4 m (n + m + 1) keeps one bias per gate; torch keeps two (``bias_ih`` and ``bias_hh``), so it
counts 4 m (n + m + 2). The textbook count is torch's minus every ``bias_hh``: the two bias
vectors add up to one in every gate where both are plain offsets (for torch's GRU, b_hn sits
inside r * (W_hn h + b_hn), so there the textbook count is one vector short of the free ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from torch import nn

from ..cells import make_cell


def textbook_parameter_count(cell: str, n: int, m: int, bias: bool = True) -> int:
    """Parameters of one ``cell`` layer (one direction) with n inputs and m units, one bias per
    gate: G m (n + m + 1) for G gate blocks, plus the cell's extras (peepholes ...).

    Example:
        >>> textbook_parameter_count("lstm", 10, 20)   # 4 * 20 * (10 + 20 + 1)
        2480
    """
    shapes = make_cell(cell, n, m, bias).parameter_shapes()
    return sum(prod(s) for name, s in shapes.items() if name != "bias_hh")


@dataclass
class LayerCount:
    """One row of the summary: a module that owns parameters."""

    name: str
    kind: str
    parameters: int  # as torch counts them
    textbook: int  # with one bias per gate in recurrent layers


def parameter_counts(model: nn.Module) -> list[LayerCount]:
    """One row per module that owns parameters (each shared parameter counted once).

    Works for rnnkit's layers and torch.nn.RNN/LSTM/GRU alike, as both name their second
    bias vectors ``bias_hh_*``."""
    seen: set[int] = set()
    rows = []
    for name, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if id(p) not in seen]
        if not own:
            continue
        seen.update(id(p) for _, p in own)
        count = sum(p.numel() for _, p in own)
        second_bias = sum(p.numel() for n, p in own if n.startswith("bias_hh_"))
        rows.append(LayerCount(name or "(model)", type(module).__name__, count,
                               count - second_bias))
    return rows


def parameter_summary(model: nn.Module) -> str:
    """A table of the modules that own parameters: type, torch's count and the textbook count
    (one bias per gate), with totals.

    Example:
        >>> import rnnkit, torch
        >>> print(parameter_summary(torch.nn.Sequential(rnnkit.LSTM(10, 20))))
        layer  type  parameters  textbook (one bias)
        --------------------------------------------
        0      LSTM       2,560                2,480
        --------------------------------------------
        total             2,560                2,480
    """
    counts = parameter_counts(model)
    rows = [("layer", "type", "parameters", "textbook (one bias)")]
    rows += [(c.name, c.kind, f"{c.parameters:,}", f"{c.textbook:,}") for c in counts]
    rows.append(("total", "", f"{sum(c.parameters for c in counts):,}",
                 f"{sum(c.textbook for c in counts):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])
