"""The cells: the math of one time step per family, named as in the seeds.

``available()`` lists the names; ``make_cell(name, input_size, hidden_size)`` builds one.
A new cell is a class in a module here, listed in that module's ``CELLS``.
"""

from __future__ import annotations

from . import elman, gru, layernorm, lstm, lstm_variants, minimal, mut, nas
from .base import Cell, Params, State

_REGISTRY: dict[str, type[Cell]] = {}


def register(cls: type[Cell]) -> type[Cell]:
    """Make a cell class known by its ``name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


# one module per family, each listing its cells in CELLS
for _module in (elman, lstm, lstm_variants, gru, layernorm, mut, nas, minimal):
    for _cls in _module.CELLS:
        register(_cls)


def available() -> list[str]:
    """Names of every cell, in registration order."""
    return list(_REGISTRY)


def cell_class(name: str) -> type[Cell]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown cell {name!r}: choose one of {', '.join(available())}")
    return _REGISTRY[name]


def describe(name: str) -> str:
    """One line saying what the cell ``name`` is: its ``description``, else the first sentence of
    its docstring."""
    cls = cell_class(name)
    if cls.description:
        return cls.description
    first = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(first.split()).split(". ")[0].rstrip(".")


def make_cell(name: str, input_size: int, hidden_size: int, bias: bool = True,
              recompute: bool = True) -> Cell:
    """Build the cell ``name`` for the given sizes (``recompute``: see ``Cell``)."""
    return cell_class(name)(input_size, hidden_size, bias, recompute)


__all__ = ["Cell", "Params", "State", "available", "cell_class", "describe", "make_cell",
           "register"]
