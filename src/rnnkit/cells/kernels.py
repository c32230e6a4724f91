"""The compiled time loops as a cell sees them: handed over by the engine.

A cell's file holds the seeds' math (its step and the step's backward); how the steps run fast
belongs to the engine. A cell whose loops exist compiled (``compiled_loop = True``) calls them
through ``ops()``, and the engine (``engine/compiled.py``, which builds ``loops.cpp``) says where
they come from when it is imported: the arrow runs from the engine to the cells, never back.
Until it does (a cell used without the engine) there are none, and every cell runs its Python
loops.

Example:
    >>> from rnnkit.cells import kernels
    >>> import torch
    >>> kernels.usable(torch.zeros(2, dtype=torch.int64)) is None   # integers: never
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_source: dict[str, Callable[[], object] | None] = {"ops": None, "loaded": None}


def provide(ops: Callable[[], object], loaded: Callable[[], object]) -> None:
    """The engine's two ways to get the compiled ops: ``ops()`` builds them on first use (None
    where they cannot be), ``loaded()`` only returns them once built."""
    _source["ops"], _source["loaded"] = ops, loaded


def ops() -> object:
    """The compiled ops (``torch.ops.rnnkit_loops``), built on first use; None without them."""
    return _source["ops"]() if _source["ops"] is not None else None


def loaded() -> object:
    """The ops if something has already built them, else None (never starts a build)."""
    return _source["loaded"]() if _source["loaded"] is not None else None


def usable(*tensors: torch.Tensor) -> object:
    """The ops, if they can run on these tensors (CPU, float32 or float64), else None."""
    if any(t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64)
           for t in tensors):
        return None
    return ops()
