"""``rnnkit.RNN``, ``rnnkit.LSTM``, ``rnnkit.GRU``: drop-in replacements for torch.nn's.

Same constructor arguments (positional too), call signature, returned tensors and
``state_dict`` keys; plus the keyword-only options of ``Recurrent`` (``backend`` ...).
"""

from __future__ import annotations

from .recurrent import Recurrent

_TORCH_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
               "bidirectional", "proj_size", "device", "dtype")


def _torch_kwargs(args: tuple, kwargs: dict, names: tuple[str, ...], cls: str) -> dict:
    if len(args) > len(names):
        raise TypeError(f"{cls} takes at most {len(names)} positional arguments, got {len(args)}")
    for name, value in zip(names, args):
        if name in kwargs:
            raise TypeError(f"{cls} got multiple values for argument {name!r}")
        kwargs[name] = value
    return kwargs


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
        kwargs = _torch_kwargs(args, kwargs, _TORCH_ARGS, "LSTM")
        super().__init__("lstm", **kwargs)


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
        kwargs = _torch_kwargs(args, kwargs, _TORCH_ARGS, "GRU")
        if kwargs.get("proj_size"):
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("gru", **kwargs)


class RNN(Recurrent):
    """Drop-in for ``torch.nn.RNN``: ``nonlinearity`` "tanh" or "relu" (4th positional, as
    torch), and also "sigmoid", which torch lacks (runs on the rnnkit engines).

    Example:
        >>> import torch, rnnkit
        >>> rnn = rnnkit.RNN(3, 5, 1, "relu", init="identity")   # the IRNN
        >>> rnn(torch.randn(10, 2, 3))[0].shape
        torch.Size([10, 2, 5])
    """

    def __init__(self, *args, **kwargs) -> None:
        names = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias",
                 "batch_first", "dropout", "bidirectional", "device", "dtype")
        kwargs = _torch_kwargs(args, kwargs, names, "RNN")
        if kwargs.get("proj_size"):
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity not in ("tanh", "relu", "sigmoid"):
            raise ValueError(f"Unknown nonlinearity {self.nonlinearity!r}: choose 'tanh', "
                             "'relu' or 'sigmoid'")
        super().__init__(f"rnn_{self.nonlinearity}", **kwargs)
