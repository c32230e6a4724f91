"""``rnnkit.RNN``, ``rnnkit.LSTM``, ``rnnkit.GRU``: drop-in replacements for torch.nn's.

Same constructor arguments (positional too), call signature, returned tensors and
``state_dict`` keys; plus the keyword-only options of ``Recurrent`` (``backend`` ...).
"""

from __future__ import annotations

from .recurrent import Recurrent

_NO_PROJ = "proj_size argument is only supported for LSTM, not RNN or GRU"


class LSTM(Recurrent):
    """Drop-in for ``torch.nn.LSTM``, with rnnkit's backends and options.

    Example:
        >>> import torch, rnnkit
        >>> ours, theirs = rnnkit.LSTM(8, 16, 2), torch.nn.LSTM(8, 16, 2)
        >>> _ = ours.load_state_dict(theirs.state_dict())
        >>> x = torch.randn(5, 3, 8)
        >>> torch.allclose(ours(x)[0], theirs(x)[0], atol=1e-6)
        True
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("lstm", *args, **kwargs)


class GRU(Recurrent):
    """Drop-in for ``torch.nn.GRU`` (reset gate applied after the recurrent matmul, as cuDNN).

    Example:
        >>> import torch, rnnkit
        >>> gru = rnnkit.GRU(4, 6, batch_first=True, backend="bptt")
        >>> out, h = gru(torch.randn(2, 7, 4))
        >>> out.shape, h.shape
        (torch.Size([2, 7, 6]), torch.Size([1, 2, 6]))
    """

    def __init__(self, *args, **kwargs) -> None:
        if len(args) > 7 and args[7] or kwargs.get("proj_size"):
            raise ValueError(_NO_PROJ)
        super().__init__("gru", *args, **kwargs)


class RNN(Recurrent):
    """Drop-in for ``torch.nn.RNN``: ``nonlinearity`` "tanh" or "relu" (4th positional, as
    torch), and also "sigmoid", which torch lacks (runs on the rnnkit engines).

    Example:
        >>> import torch, rnnkit
        >>> rnn = rnnkit.RNN(3, 5, 1, "relu", init="identity")   # the IRNN
        >>> rnn(torch.randn(10, 2, 3))[0].shape
        torch.Size([10, 2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 **kwargs) -> None:
        if kwargs.get("proj_size"):
            raise ValueError(_NO_PROJ)
        if nonlinearity not in ("tanh", "relu", "sigmoid"):
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}: choose 'tanh', 'relu' or "
                             "'sigmoid'")
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype,
                         **kwargs)
        self.nonlinearity = nonlinearity
