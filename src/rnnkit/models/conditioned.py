"""A language model conditioned on one input: one-to-many (deck 000's diagrams, deck 001).

As image captioning starts the caption's RNN from the image, this model starts from a label
(a learnt embedding per label) or from a feature vector (a linear map of it): the condition
vector ``v`` gives the initial state of every layer of the recurrent stack,

    h_0^l = tanh(W_h^l v + b_h^l)        (and c_0^l = W_c^l v + b_c^l for an LSTM-like cell),

and the text is then written by an ordinary ``LanguageModel`` (embedding, ``Recurrent`` of any
cell, output layer) from that state. With ``every_step`` (the default) the condition is also
added to the token embedding at every step (``x_t + P v``: the same as feeding ``[x_t; v]`` to
the first layer, with the map factored through the embedding's width), so it cannot fade over a
long text. ``every_step=False`` is the start alone, the captioning form the decks draw (and
Vinyals et al. 2015, "Show and Tell", preferred for images). Measured on the sentiment tweets
(characters, LSTM 256, 3,000 steps of 64 tweets): the bits per character are the same either
way (2.181 against 2.177), but fed at every step the label is what the text depends on more
(the own label the likeliest for 60 % of the test tweets, against 53 % from the start alone);
a tweet is 100 steps long, and the state forgets its start.

``model.given(condition)`` binds a condition and gives a plain ``model(x, state)`` module, the
interface ``models.generate`` and ``models.scoring`` drive, so sampling (temperature, top-k,
top-p) and scoring are the language model's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError
from .language_model import LanguageModel, State


class ConditionedLM(LanguageModel):
    """A ``LanguageModel`` whose initial state comes from a label or a feature vector.

    Give ``num_labels`` (conditions are label ids, (B,) long) or ``features`` (conditions
    are vectors, (B, features) float), not both.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> m = ConditionedLM(20, num_labels=3, cell="lstm", hidden=16, layers=2)
        >>> logits, (h, c) = m(torch.randint(20, (5, 4)), labels=torch.tensor([0, 1, 2, 0]))
        >>> logits.shape, h.shape
        (torch.Size([5, 4, 20]), torch.Size([2, 4, 16]))
        >>> h0, _ = m.initial_state(torch.tensor([0, 1]))
        >>> bool((h0[:, 0] != h0[:, 1]).any())      # each label starts from its own state
        True
        >>> ConditionedLM(**m.config).config == m.config
        True
    """

    def __init__(self, vocab_size: int, *, num_labels: int | None = None,
                 features: int | None = None, condition: int | None = None,
                 every_step: bool = True, cell: str = "lstm", embed: int | None = None,
                 hidden: int = 256, layers: int = 1, dropout: float = 0.0,
                 tie_weights: bool = False, backend: str = "auto", **recurrent_kw: Any):
        super().__init__(vocab_size, cell=cell, embed=embed, hidden=hidden, layers=layers,
                         dropout=dropout, tie_weights=tie_weights, backend=backend,
                         **recurrent_kw)
        if (num_labels is None) == (features is None):
            raise UserError("a conditioned language model needs num_labels (labels) or "
                            "features (vectors), not both and not neither")
        for name, v in (("num_labels", num_labels), ("features", features),
                        ("condition", condition)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UserError(f"{name} must be a positive integer, got {v!r}")
        condition = hidden if condition is None else condition
        self.config.update(num_labels=num_labels, features=features, condition=condition,
                           every_step=bool(every_step))
        # the condition vector v: a learnt vector per label, or a linear map of the features
        self.condition = (nn.Embedding(num_labels, condition) if num_labels is not None
                          else nn.Linear(features, condition))
        # v -> (h_0, [c_0]) of every layer, in one product
        self.to_state = nn.Linear(condition, self.rnn.num_states * layers * hidden)
        self.to_input = (nn.Linear(condition, self.config["embed"], bias=False)
                         if every_step else None)

    def vector(self, condition: Tensor) -> Tensor:
        """The condition vector v (B, condition) of label ids (B,) or features (B, F)."""
        if self.config["num_labels"] is not None:
            if condition.dtype not in (torch.int32, torch.int64) or condition.dim() != 1:
                raise ValueError(f"labels must be a (B,) tensor of label ids, got "
                                 f"{condition.dtype} of shape {tuple(condition.shape)}")
            return self.condition(condition)
        if condition.dim() != 2 or condition.shape[1] != self.config["features"]:
            raise ValueError(f"features must be (B, {self.config['features']}), got shape "
                             f"{tuple(condition.shape)}")
        return self.condition(condition.to(self.output.weight.dtype))

    def initial_state(self, condition: Tensor) -> State:
        """The state the text starts from: ``h`` or ``(h, c)``, each (layers, B, H)."""
        L, H = self.rnn.num_layers, self.rnn.hidden_size
        parts = self.to_state(self.vector(condition)).view(-1, self.rnn.num_states, L, H)
        h = torch.tanh(parts[:, 0]).transpose(0, 1).contiguous()  # in a tanh cell's range
        if self.rnn.num_states == 1:
            return h
        return h, parts[:, 1].transpose(0, 1).contiguous()

    def forward(self, x: Tensor, state: State | None = None, labels: Tensor | None = None
                ) -> tuple[Tensor, State]:
        """``x`` (T, B) token ids, ``labels`` the conditions (label ids (B,) or features
        (B, F)); ``state`` None starts from ``initial_state(labels)``, else continues from it
        (then ``labels`` is needed only with ``every_step``) -> ``(logits (T, B, V), state)``."""
        if x.dim() != 2:
            raise ValueError(f"x must be (T, B) token ids, got shape {tuple(x.shape)}")
        if labels is None and (state is None or self.to_input is not None):
            raise ValueError("give the condition: labels=(B,) label ids or (B, F) features")
        if state is None:
            state = self.initial_state(labels)
        e = self.embedding(x)
        if self.to_input is not None:
            e = e + self.to_input(self.vector(labels)).unsqueeze(0)
        out, state = self.rnn(self.drop(e), state)
        return self.output(self.drop(out)), state

    def given(self, condition: Tensor) -> Given:
        """This model with ``condition`` bound: ``given(c)(x, state)`` is ``self(x, state, c)``,
        the ``model(x, state)`` interface of ``generate`` and ``total_nats``."""
        return Given(self, condition)


class Given(nn.Module):
    """A ``ConditionedLM`` with its condition bound (see ``ConditionedLM.given``).

    Example:
        >>> import torch
        >>> m = ConditionedLM(9, num_labels=2, hidden=8)
        >>> x, y = torch.randint(9, (4, 1)), torch.tensor([1])
        >>> torch.equal(m.given(y)(x)[0], m(x, labels=y)[0])
        True
    """

    def __init__(self, model: ConditionedLM, condition: Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("condition", condition, persistent=False)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.model(x, state, self.condition.to(x.device))
