"""A recurrent network with a read-out at every step (synced many-to-many) or at the last.

Deck 002's sequence mappings: an input layer (none for bits and values, which enter W_ih
directly; an embedding for symbols), a recurrent stack of any cell, and a linear read-out
y_t = W_hy h_t + b_y, at every step (binary addition, parity, copy) or at the last step only
(the adding problem: many-to-one).

Time-major, as the data layer gives it: ``x`` (T, B, F) floats or (T, B) symbols ->
(T, B, O) or, reading the last step only, (B, O).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..cells import available, cell_class
from ..engine.run import check_backend
from ..errors import UserError
from ..layers import Recurrent

READOUTS = ("each", "last")


class SyncedRNN(nn.Module):
    """Inputs -> recurrent stack -> a linear read-out per step (``readout="each"``) or at the
    last step (``"last"``). With ``embed``, the input is symbols ``0 .. inputs - 1`` embedded
    in ``embed`` dimensions; without, ``inputs`` features per step. ``dropout`` acts between
    stacked layers.

    ``config`` holds the constructor's arguments, so ``SyncedRNN(**m.config)`` rebuilds it
    (checkpoints store it beside the weights).

    Example:
        >>> import torch
        >>> adder = SyncedRNN(2, 2, cell="rnn_tanh", hidden=16)     # 2 bits in, 2 classes out
        >>> adder(torch.rand(9, 4, 2)).shape                        # (T, B, F) -> (T, B, O)
        torch.Size([9, 4, 2])
        >>> adding = SyncedRNN(2, 1, cell="lstm", hidden=32, readout="last")
        >>> adding(torch.rand(50, 4, 2)).shape                      # many-to-one: (B, O)
        torch.Size([4, 1])
        >>> SyncedRNN(**adding.config).config == adding.config
        True
    """

    def __init__(self, inputs: int, outputs: int, *, cell: str = "lstm", hidden: int = 128,
                 layers: int = 1, dropout: float = 0.0, embed: int | None = None,
                 readout: str = "each", backend: str = "auto", **recurrent_kw: Any):
        super().__init__()
        _check(inputs, outputs, cell, hidden, layers, dropout, embed, readout, backend)
        self.config = {"inputs": inputs, "outputs": outputs, "cell": cell, "hidden": hidden,
                       "layers": layers, "dropout": float(dropout), "embed": embed,
                       "readout": readout, "backend": backend, **recurrent_kw}
        self.embedding = nn.Embedding(inputs, embed) if embed else None
        self.rnn = Recurrent(cell, embed or inputs, hidden, layers, dropout=dropout,
                             backend=backend, **recurrent_kw)
        self.output = nn.Linear(hidden, outputs)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (T, B, inputs) floats, or (T, B) symbols with ``embed`` -> the read-out."""
        want = 2 if self.embedding is not None else 3
        if x.dim() != want:
            what = "(T, B) symbols" if want == 2 else f"(T, B, {self.config['inputs']}) features"
            raise ValueError(f"x must be {what}, got shape {tuple(x.shape)}")
        h, _ = self.rnn(self.embedding(x) if self.embedding is not None else x)
        return self.output(h[-1] if self.config["readout"] == "last" else h)


def _check(inputs, outputs, cell, hidden, layers, dropout, embed, readout, backend) -> None:
    for name, v in [("inputs", inputs), ("outputs", outputs), ("hidden", hidden),
                    ("layers", layers), ("embed", embed or 1)]:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if cell not in available():
        raise UserError(f"unknown cell {cell!r}; choose --cell from {', '.join(available())}")
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), got {dropout!r}; e.g. --dropout 0.1")
    if readout not in READOUTS:
        raise UserError(f"unknown readout {readout!r}; choose from {', '.join(READOUTS)}")
    try:
        check_backend(cell_class(cell), backend)
    except ValueError as e:  # an unknown backend, or one that cannot run this cell
        raise UserError(f"{e} (--backend)") from e
