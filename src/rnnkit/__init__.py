"""rnnkit: the recurrent-network system of the lecture decks, on PyTorch."""

from . import cells
from .layers import GRU, LSTM, RNN, Recurrent, parameter_summary, textbook_parameter_count
from .pickling import safe_globals

__version__ = "0.1.0"

__all__ = [
    "GRU", "LSTM", "RNN", "Recurrent", "cells", "load", "parameter_summary", "safe_globals",
    "textbook_parameter_count",
]


def __getattr__(name: str):
    # ``rnnkit.load`` imported on first use, so ``import rnnkit`` stays light
    if name == "load":
        from .api import load

        return load
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
