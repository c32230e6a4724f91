"""rnnkit: the recurrent-network system of the lecture decks, on PyTorch."""

from . import cells
from .layers import GRU, LSTM, RNN, Recurrent, parameter_summary, textbook_parameter_count

__version__ = "0.1.0"

__all__ = [
    "GRU", "LSTM", "RNN", "Recurrent", "cells", "parameter_summary", "textbook_parameter_count",
]
