"""nn.Modules that users compose."""

from .recurrent import Recurrent
from .summary import parameter_counts, parameter_summary, textbook_parameter_count
from .torch_compat import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN", "Recurrent", "parameter_counts", "parameter_summary",
           "textbook_parameter_count"]
