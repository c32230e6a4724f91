"""The cells: the math of one time step per family, named as in the seeds.

``available()`` lists the names; ``make_cell(name, input_size, hidden_size)`` builds one.
A new cell is a class in a module here, listed in that module's ``CELLS``; a cell of your
own is a class in a file of yours, registered (``register``) or named ``FILE.py:CLASS``
wherever a cell name goes (see ``user.py``).
"""

from __future__ import annotations

from . import elman, gru, layernorm, lstm, lstm_variants, minimal, mut, nas
from .base import Cell, Params, State
from .user import check_contract, has_backward, is_spec, load_spec

_REGISTRY: dict[str, type[Cell]] = {}


def register(cls: type[Cell]) -> type[Cell]:
    """Make a cell class known by its ``name`` (usable as a decorator). A class of yours is
    checked against the contract in ``user.py`` and may not take a built-in cell's name."""
    if not cls.__module__.startswith("rnnkit.cells."):
        check_contract(cls)
        taken = _REGISTRY.get(cls.name)
        if taken is not None and taken.__module__.startswith("rnnkit.cells."):
            raise ValueError(f"cell name {cls.name!r} is rnnkit's own {taken.__name__}: give "
                             f"{cls.__name__} another name")
    _REGISTRY[cls.name] = cls
    return cls


# one module per family, each listing its cells in CELLS
for _module in (elman, lstm, lstm_variants, gru, layernorm, mut, nas, minimal):
    for _cls in _module.CELLS:
        register(_cls)


class _Names(list):
    """``available()``'s list, in which ``"FILE.py:CLASS"`` is also a cell (the file imported
    on the test: a model that checks ``cell in available()`` takes a cell of yours)."""

    def __contains__(self, name: object) -> bool:
        if is_spec(name):
            load_spec(name)  # type: ignore[arg-type]  (a UserError says what is wrong)
            return True
        return super().__contains__(name)


def available() -> list[str]:
    """Names of every cell, in registration order (and ``FILE.py:CLASS`` is a cell too)."""
    return _Names(_REGISTRY)


def cell_class(name: str) -> type[Cell]:
    if is_spec(name) and name not in _REGISTRY:
        return load_spec(name)
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


__all__ = ["Cell", "Params", "State", "available", "cell_class", "describe", "has_backward",
           "is_spec", "load_spec", "make_cell", "register"]
