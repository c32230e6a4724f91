"""One switch over the engines: which backend can run which cell, and running one direction."""

from __future__ import annotations

from torch import Tensor

from ..cells.base import Cell, Params, State
from ..cells.user import has_backward
from ..errors import UserError
from .autograd import run_autograd
from .bptt import run_bptt

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


def run_sequence(
    cell: Cell, x: Tensor, state: State, p: Params, backend: str, mask: Tensor | None = None
) -> tuple[Tensor, State]:
    """Run one layer in one direction over time-major ``x`` (T, B, I) with an own engine
    (``bptt``, ``autograd`` or ``scan``). Returns h for every step (a masked-out step carries
    the state) and the final state."""
    if backend == "bptt" and has_backward(cell):  # projects x itself (inside its Function)
        return run_bptt(cell, x, state, p, mask)
    xp = cell.input_projection(x, p)
    # bptt for a cell without a backward step only comes from auto (layers refuse it named):
    # the step math under autograd
    if backend in ("autograd", "bptt"):
        return run_autograd(cell, xp, state, p, mask)
    if backend == "scan":
        from .scan import run_scan

        return run_scan(cell, xp, state, p, mask)
    raise ValueError(f"run_sequence runs bptt, autograd or scan, not {backend!r}")
