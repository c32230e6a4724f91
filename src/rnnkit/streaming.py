"""Streaming inference: feed a recurrent net one step or one chunk at a time, carrying the state.

Deck 001's stateful mode as an inference feature: a recurrent net's state after step t is all
it needs of steps 1..t, so a sequence that arrives in pieces (a sensor, a live transcript, a
user typing) is run piece by piece, each call starting from the state the previous one ended
in, and the outputs are those of one call over the whole sequence. A bidirectional net cannot
stream: its backward direction reads the end of the sequence first.

``Stream`` wraps anything whose forward is ``(input, state) -> (output, state)``: ``rnnkit.RNN``
/ ``LSTM`` / ``GRU``, ``rnnkit.Recurrent`` with any cell and backend, torch.nn's layers, and
rnnkit's ``LanguageModel`` (token ids in, logits out). ``rnnkit.load(RUN).stream()`` gives a
trained language model's ``TextStream``: text in, the next token's probabilities out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError


class Stream:
    """A recurrent module run a chunk at a time, its state carried between calls.

    ``stream(chunk)`` returns the module's output for the chunk, as if the whole sequence so far
    had been run in one call; ``state`` is the state after it; ``reset()`` starts a new
    sequence. Chunks are time-major (T, B, ...) like the module's input (``batch_first``
    modules: (B, T, ...)); any T >= 1. Runs without gradients unless ``grad=True``.

    Example:
        >>> import torch, rnnkit
        >>> lstm = rnnkit.LSTM(3, 5, num_layers=2)
        >>> x = torch.randn(20, 4, 3)
        >>> stream = Stream(lstm)
        >>> pieces = [stream(x[i:i + 7]) for i in range(0, 20, 7)]   # 7, 7, then 6 steps
        >>> whole, _ = lstm(x)
        >>> torch.allclose(torch.cat(pieces), whole, atol=1e-6)
        True
    """

    def __init__(self, module: nn.Module, state: Any = None, grad: bool = False):
        if _bidirectional(module):
            raise UserError("a bidirectional net cannot stream: its backward direction reads "
                            "the end of the sequence first; stream a unidirectional one")
        self.module, self.state, self.grad = module, state, grad
        self.time_dim = 1 if getattr(_recurrent(module), "batch_first", False) else 0
        self.steps = 0

    def __call__(self, chunk: Tensor) -> Tensor:
        if chunk.dim() < 1 or chunk.shape[self.time_dim] < 1:
            raise UserError(f"a chunk needs at least one step; got shape {tuple(chunk.shape)}")
        with torch.set_grad_enabled(self.grad):
            out, self.state = self.module(chunk, self.state)
        self.steps += chunk.shape[self.time_dim]
        return out

    def reset(self, state: Any = None) -> None:
        """Start a new sequence (from ``state``; None: zeros)."""
        self.state, self.steps = state, 0

    def __repr__(self) -> str:
        return f"Stream({type(self.module).__name__}, steps={self.steps})"


class TextStream:
    """A trained language model fed text as it arrives: ``feed(text)`` returns p(next token)
    after everything fed so far. Usually made by ``rnnkit.load(RUN).stream()``.

    Each piece is tokenized on its own, so with a character tokenizer the stream equals scoring
    the whole text at once; a word or BPE tokenizer may cut a word at a piece's edge (feed whole
    words). Before the first piece the model reads the start token, as sampling does.

    Example:
        >>> from rnnkit.data import build_tokenizer
        >>> from rnnkit.models.language_model import LanguageModel
        >>> tok = build_tokenizer("char", "hello world\\n")
        >>> s = TextStream(LanguageModel(tok.vocab_size, hidden=8), tok)
        >>> p = s.feed("hel")
        >>> p.shape == (tok.vocab_size,), round(float(p.sum()), 4)
        (True, 1.0)
        >>> torch.allclose(s.feed("lo"), s.reset() or s.feed("hello"), atol=1e-6)
        True
    """

    def __init__(self, model: nn.Module, tokenizer: Any, start_id: int | None = None):
        from .models.generate import start_token_id

        self.model, self.tokenizer = model.eval(), tokenizer
        self.start_id = start_token_id(tokenizer) if start_id is None else start_id
        self.stream = Stream(model)
        self.reset()

    def reset(self) -> None:
        """Start a new text: the model reads the start token again."""
        self.stream.reset()
        self.last = self.stream(torch.tensor([[self.start_id]]))[-1, 0]

    def feed(self, text: str) -> Tensor:
        """Read ``text`` (it may be empty) and return the next token's probabilities (V,)."""
        ids = self.tokenizer.encode(text)
        if ids:
            self.last = self.stream(torch.tensor(ids).unsqueeze(1))[-1, 0]
        return self.last.float().softmax(-1)


def _recurrent(module: nn.Module) -> nn.Module:
    """The recurrent layer itself: the module, or a model's ``rnn``."""
    return getattr(module, "rnn", module)


def _bidirectional(module: nn.Module) -> bool:
    return bool(getattr(_recurrent(module), "bidirectional", False))
