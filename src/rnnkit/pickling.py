"""Loading a whole pickled rnnkit layer or model without unpickling code.

``torch.save(model)`` pickles the module objects by their classes; ``torch.load`` in its safe
mode (``weights_only=True``, the default) rebuilds only classes it is told are safe. This lists
rnnkit's: every layer and model class, every cell (a layer holds its cells), and the
``torch.nn`` modules rnnkit's models are built of. A model of your own adds its own class.

Example:
    >>> import io, torch, rnnkit
    >>> buf = io.BytesIO()
    >>> torch.save(rnnkit.LSTM(4, 8, 2), buf)
    >>> _ = buf.seek(0)
    >>> with torch.serialization.safe_globals(rnnkit.safe_globals()):
    ...     lstm = torch.load(buf)
    >>> type(lstm).__name__, lstm.num_layers
    ('LSTM', 2)
"""

from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from . import cells

# the torch.nn modules rnnkit's layers and models hold (a model of yours may hold others)
TORCH_MODULES = (nn.Conv1d, nn.Dropout, nn.Embedding, nn.Linear, nn.ModuleList,
                 nn.Sequential, nn.Tanh)


def safe_globals() -> list[type]:
    """The classes ``torch.load`` needs to rebuild a pickled rnnkit layer or model, for
    ``torch.serialization.safe_globals(...)`` or ``add_safe_globals(...)``."""
    return [*_module_classes(), *(cells.cell_class(name) for name in cells.available()),
            *TORCH_MODULES]


def _module_classes() -> list[type]:
    """Every nn.Module class of ``rnnkit.layers`` and ``rnnkit.models`` (the models' modules
    imported here, so that ``import rnnkit`` stays light)."""
    from . import layers, models

    for package in (layers, models):
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
    found, todo = [], [nn.Module]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith(("rnnkit.layers.", "rnnkit.models.")):
                found.append(sub)
    return found
