"""Your own cell: the step math in a Python file of yours, and every layer, model, backend and
command of rnnkit runs it.

The contract is small. Subclass ``rnnkit.cells.Cell`` and define:

* ``name``: the cell's name (a class attribute; ``--cell NAME`` once registered);
* ``gates``: rows of ``weight_ih`` and ``weight_hh`` in units of ``hidden_size`` (default 1),
  and ``num_states``: 1 for h, 2 for (h, c) (default 1); optionally ``gate_names`` (the row
  blocks in order; a block "f" gets ``forget_bias``);
* either ``step(xp, state, p) -> new_state``: one step, differentiated by autograd (the
  ``autograd`` backend); or ``forward_step(xp, state, p) -> (new_state, saved)`` and, to run on
  ``bptt``, its hand-derived ``backward_step(saved, dstate, p) -> (dxp, dhp, dstate_prev,
  dextras)``.

Here ``xp`` is W_ih x(t) + b_ih for the step, (B, gates * H); ``state`` a tuple of (B, H);
``p`` the parameters by name; ``self.recurrent(h, p)`` is W_hh h + b_hh (under recurrent
dropout W_hh (m * h) + b_hh: a step that reads ``p["weight_hh"]`` itself passes h through
``self.dropped(h, p)`` first). In the backward,
``dxp`` is the gradient of xp, ``dhp`` that of the recurrent pre-activation W_hh h + b_hh
(rnnkit forms dW_hh and db_hh from it in one product after the loop), ``dstate_prev`` the
gradient of the previous state (W_hh^T dhp included) and ``dextras`` that of any parameter
beyond the four (declare their shapes in ``extra_shapes`` and their names in
``recurrent_extras``). Every backend but ``native`` (torch's kernels cannot run your math)
then runs the cell; ``bptt`` needs the backward step, and ``auto`` takes ``autograd`` without
one. The buffered methods and the compiled loops of the built-in cells are optional speed-ups.

Two ways to use it:

* ``rnnkit.cells.register(MyCell)`` (or ``@register``): then ``Recurrent("mycell", ...)``;
* ``"path/to/file.py:MyCell"`` wherever a cell name goes (``--cell FILE:CLASS`` on the command
  line): the file is imported on first use, and a trained run records the file's absolute path,
  so ``rnnkit.load`` imports it again (keep the file where it was). Importing the file runs
  its code: load runs whose cell file you trust.

Leave ``__init__`` to ``Cell`` (a dataclass: input_size, hidden_size, bias, recompute).

``rnnkit gradcheck FILE:CLASS`` checks the backward step against autograd in float64.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

from ..errors import UserError
from .base import Cell

_LOADED: dict[str, type[Cell]] = {}  # absolute spec -> class, once per process


def is_spec(name: object) -> bool:
    """``name`` reads as ``FILE.py:CLASS``."""
    if not isinstance(name, str) or ":" not in name:
        return False
    path, _, cls = name.rpartition(":")
    return path.endswith(".py") and cls.isidentifier()


def absolute_spec(spec: str) -> str:
    """``FILE:CLASS`` with FILE made absolute (a run records this, to import it again)."""
    path, _, cls = spec.rpartition(":")
    return f"{Path(path).expanduser().resolve()}:{cls}"


def has_backward(cell: Cell | type[Cell]) -> bool:
    """The cell supplies its backward step (``backward_step``, or the buffered loops of the
    built-in cells), so the ``bptt`` engine can run it."""
    cls = cell if isinstance(cell, type) else type(cell)
    return (cls.backward_step is not Cell.backward_step
            or cls.saved_shapes is not Cell.saved_shapes)


def check_contract(cls: object) -> None:
    """A ``ValueError`` naming what a cell class lacks (see the module docstring)."""
    what = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Cell)):
        raise UserError(f"{what} is not a cell: subclass rnnkit.cells.Cell "
                        "(see rnnkit/cells/user.py)")
    if not isinstance(cls.name, str) or not cls.name or ":" in cls.name:
        raise UserError(f"cell class {what} needs a name: a class attribute, name = \"mycell\" "
                        "(without ':')")
    for attr in ("gates", "num_states"):
        v = getattr(cls, attr)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"cell class {what}: {attr} must be a positive integer, got {v!r}")
    if cls.step is Cell.step and cls.forward_step is Cell.forward_step:
        raise UserError(f"cell class {what} has no step math: define step(xp, state, p) or "
                        "forward_step(xp, state, p) (see rnnkit/cells/user.py)")
    if cls.native_mode and not cls.__module__.startswith("rnnkit."):
        raise UserError(f"cell class {what} sets native_mode={cls.native_mode!r}: torch's "
                        "kernels cannot run your math; set native_mode = None")


def load_spec(spec: str) -> type[Cell]:
    """The cell class ``FILE:CLASS`` names, its file imported once per process. A file that is
    missing or fails to import, or defines no such cell class, is a ``UserError`` (one line)."""
    key = absolute_spec(spec)
    path_text, _, cls_name = key.rpartition(":")
    path = Path(path_text)
    if key in _LOADED and path.is_file():
        return _LOADED[key]
    if not path.is_file():
        raise UserError(f"cell file {path} not found (cell {spec}): give the path of the "
                        "Python file that defines the cell (a trained run imports it from the "
                        "path it was trained with: move the file back there)")
    module_name = f"rnnkit_user_cell_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"cannot import {path} as Python (cell {spec})")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's code: any error, reported in one line
        del sys.modules[module_name]
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"importing cell file {path} failed: {type(e).__name__}: {first}; fix "
                        f"the file (python {path} shows the traceback)") from e
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = [n for n, c in vars(module).items() if inspect.isclass(c) and issubclass(c, Cell)
                 and c.__module__ == module_name]
        have = f"its cell classes: {', '.join(found)}" if found else "it defines no cell class"
        raise UserError(f"{path} defines no class {cls_name} ({have}); name one as "
                        f"{path_text}:CLASS")
    check_contract(cls)
    _LOADED[key] = cls
    return cls
