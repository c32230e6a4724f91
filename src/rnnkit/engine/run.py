"""One switch over the engines: which backend can run which cell, and running one direction."""

from __future__ import annotations

from torch import Tensor

from ..cells.base import Cell, Params, State
from ..cells.user import has_backward
from ..errors import UserError
from . import compiled
from .autograd import run_autograd
from .bptt import run_bptt
from .regularisers import Noise

BACKENDS = ("auto", "native", "bptt", "autograd", "scan")


def supported_backends(cell: Cell | type[Cell]) -> list[str]:
    """The backends that can run ``cell`` (``auto`` always can)."""
    names = ["auto"]
    if cell.native_mode:
        names.append("native")
    if has_backward(cell):  # a cell of yours without backward_step: autograd only
        names.append("bptt")
    names.append("autograd")
    if cell.parallel:
        names.append("scan")
    return names


def check_backend(cell: Cell | type[Cell], backend: str) -> None:
    """Raise a clear error for an unknown backend or one that cannot run this cell."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend not in supported_backends(cell):  # (a UserError: the CLI prints one line)
        raise UserError(
            f"backend {backend!r} cannot run cell {cell.name!r}: its backends are "
            f"{', '.join(supported_backends(cell))}"
        )


def bptt_lacks(cell: Cell | type[Cell], recurrent_dropout: bool, zoneout: bool,
               x: Tensor | None = None) -> str | None:
    """Why the bptt engine cannot run these regularisers for this cell (None: it can). A cell
    with buffered loops names what they apply (``bptt_regularisers``; zoneout needs the
    compiled loops, checked on ``x`` when given); one with forward_step / backward_step runs
    both, as long as W_hh multiplies h(t-1) itself (``recurrent_inputs`` as Cell's)."""
    cls = cell if isinstance(cell, type) else type(cell)
    if cls.saved_shapes is Cell.saved_shapes:  # generic: the engine applies both
        if recurrent_dropout and cls.recurrent_inputs is not Cell.recurrent_inputs:
            return f"cell {cell.name!r} multiplies W_hh by more than h(t-1)"
        return None
    have = cell.bptt_regularisers
    for wanted, name in [(recurrent_dropout, "recurrent_dropout"), (zoneout, "zoneout")]:
        if wanted and name not in have:
            return f"the bptt loops of cell {cell.name!r} have no {name}"
    if zoneout and x is not None and not compiled.usable(x):
        return (f"the bptt engine runs zoneout in its compiled loops only (CPU, float32 or "
                f"float64, with a C++ compiler), not on this {x.device.type} {x.dtype} input")
    return None


def run_sequence(
    cell: Cell, x: Tensor, state: State, p: Params, backend: str, mask: Tensor | None = None,
    noise: Noise | None = None,
) -> tuple[Tensor, State]:
    """Run one layer in one direction over time-major ``x`` (T, B, I) with an own engine
    (``bptt``, ``autograd`` or ``scan``). Returns h for every step (a masked-out step carries
    the state) and the final state. ``noise``: the regularisers' masks (``regularisers.py``);
    the layer picks a backend that runs them (``bptt_lacks``)."""
    if noise is not None and not noise.active:
        noise = None
    if backend == "bptt" and has_backward(cell):  # projects x itself (inside its Function)
        if noise is not None:
            lacks = bptt_lacks(cell, noise.recurrent is not None, noise.zoned, x)
            if lacks:
                raise UserError(f"{lacks}: use backend='auto' or 'autograd'")
        return run_bptt(cell, x, state, p, mask, noise)
    xp = cell.input_projection(x, p)
    # bptt for a cell without a backward step only comes from auto (layers refuse it named):
    # the step math under autograd
    if backend in ("autograd", "bptt"):
        return run_autograd(cell, xp, state, p, mask, noise)
    if noise is not None:
        raise UserError(f"backend {backend!r} runs no recurrent dropout or zoneout: use "
                        "backend='auto' or 'autograd'")
    if backend == "scan":
        from .scan import run_scan

        return run_scan(cell, xp, state, p, mask)
    raise ValueError(f"run_sequence runs bptt, autograd or scan, not {backend!r}")
