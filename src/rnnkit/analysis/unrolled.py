"""A model's recurrent stack run one step at a time, with every layer's state at every step
kept: what the analyses look inside.

The engines return the top layer's outputs and the final state only; the analyses need h(t)
(and c(t)) of every layer at every step, as tensors in the graph (gradient flow: dL/dh_t)
or as numbers (unit probes). This runs the cell's own step equation (``Cell.step``, the
reference every backend is tested against) over the layer's weights, so it computes what the
model computes, on any cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..layers import Recurrent
from ..models.language_model import LanguageModel
from ..models.synced import SyncedRNN


@dataclass
class Unrolled:
    """Per layer, per step, the state tuple ``(h,)`` or ``(h, c)``, each (B, H); and the top
    layer's h stacked over time, (T, B, H)."""

    states: list[list[tuple[Tensor, ...]]]
    top: Tensor

    def stacked(self, layer: int, part: int = 0) -> Tensor:
        """h (part 0) or c (part 1) of one layer over time: (T, B, H)."""
        return torch.stack([s[part] for s in self.states[layer]])


def recurrent_of(model: nn.Module) -> Recurrent:
    """The model's recurrent stack; a bidirectional one has no single "steps back" and is
    refused."""
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, Recurrent):
        raise UserError(f"a {type(model).__name__} has no recurrent stack to analyse; pass a "
                        "run of rnnkit train lm or rnnkit train synthetic")
    if rnn.bidirectional:
        raise UserError("this model reads its input in both directions: gradient flow and "
                        "spectra here are for one direction; analyse a unidirectional run")
    return rnn


def unroll(rnn: Recurrent, x: Tensor, state: list[tuple[Tensor, ...]] | None = None,
           keep_grad: bool = False) -> Unrolled:
    """Run ``rnn`` over ``x`` (T, B, I), one layer after another, each step by the cell's
    ``step``; ``state``: one initial tuple per layer (None: zeros). ``keep_grad`` keeps the
    gradient of every h(t) after a backward (``h.grad``). Eval semantics: no dropout."""
    states: list[list[tuple[Tensor, ...]]] = []
    for k, cell in enumerate(rnn.cells):
        p = rnn.layer_params(k, 0)
        zeros = x.new_zeros(x.shape[1], rnn.hidden_size)
        s = state[k] if state is not None else (zeros,) * cell.num_states
        layer = []
        for xp_t in cell.input_projection(x, p).unbind(0):
            s = cell.step(xp_t, s, p)
            if keep_grad:
                s[0].retain_grad()
            layer.append(s)
        states.append(layer)
        x = torch.stack([s[0] for s in layer])
    return Unrolled(states, x)


def model_inputs(model: nn.Module, inputs: Tensor) -> Tensor:
    """What the recurrent stack reads: embedded tokens or symbols, or the features as given."""
    if isinstance(model, LanguageModel):
        return model.embedding(inputs)
    if isinstance(model, SyncedRNN):
        return model.embedding(inputs) if model.embedding is not None else inputs
    raise UserError(f"a {type(model).__name__} is not analysed here; pass a run of rnnkit "
                    "train lm or rnnkit train synthetic")
