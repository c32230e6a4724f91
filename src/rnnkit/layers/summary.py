"""Parameter counts, as Keras' ``summary()``, with deck 001's textbook count beside torch's.

Deck 001 asks how many parameters an LSTM with n inputs and m units has: the textbook answer
4 m (n + m + 1) keeps one bias per gate; torch keeps two (b_ih and b_hh), so it counts
4 m (n + m + 2). Both are shown for every recurrent layer.
"""

from __future__ import annotations

from torch import nn

from ..cells import make_cell


def textbook_parameter_count(cell: str, n: int, m: int) -> int:
    """Parameters of one ``cell`` layer with n inputs and m units, one bias per gate:
    G m (n + m + 1) for G gate blocks, plus the cell's extra parameters (peepholes ...)."""
    c = make_cell(cell, n, m)
    extra = sum(_numel(s) for s in c.extra_shapes().values())
    return c.gates * m * (n + m + 1) + extra


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def parameter_summary(model: nn.Module) -> str:
    """A table of every leaf module: type, parameters (torch's count) and, for recurrent
    layers, the textbook count with one bias per gate."""
    from .recurrent import Recurrent

    rows = [("layer", "type", "parameters", "textbook (one bias)")]
    total = textbook_total = 0
    for name, module in model.named_modules():
        is_rec = isinstance(module, Recurrent)
        if list(module.children()) and not is_rec:
            continue
        if any(isinstance(m, Recurrent) for m in _parents(model, name)):
            continue
        count = sum(p.numel() for p in module.parameters())
        if is_rec:
            book = 0
            for cell in module.cells:
                book += textbook_parameter_count(module.mode, cell.input_size, cell.hidden_size) \
                    * module.num_directions
            book += count - sum(p.numel() for n, p in module.named_parameters()
                                if not n.startswith("fusion")) if module.fusion == "linear" else 0
            textbook = book
        else:
            textbook = count
        rows.append((name or "(model)", type(module).__name__, f"{count:,}", f"{textbook:,}"))
        total += count
        textbook_total += textbook
    rows.append(("total", "", f"{total:,}", f"{textbook_total:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def _parents(model: nn.Module, name: str) -> list[nn.Module]:
    parts = name.split(".") if name else []
    out, m = [], model
    for part in parts[:-1]:
        m = getattr(m, part)
        out.append(m)
    if parts and parts != [""]:
        out.insert(0, model)
    return out
