"""Text generation from a recurrent language model, one token at a time (deck 000, 003).

The prime is fed once, in one forward over the whole prime (time-major ``(T, 1)``); after
that each new token is sampled from the last output's distribution and fed back with the
carried recurrent state, so ``length`` tokens cost ``length`` single steps, never a re-run of
the prefix.

Sampling, in this order (as Hugging Face's ``generate`` applies them):

1. ``temperature``: logits / T (T < 1 sharpens, T > 1 flattens); ``temperature=0`` is greedy
   (the argmax, no randomness; ``top_k``/``top_p`` do not change it).
2. ``top_k > 0``: keep the k most probable tokens.
3. ``top_p < 1`` (nucleus sampling, Holtzman et al. 2020): keep the smallest set of most
   probable tokens whose probability reaches ``p``.
4. Renormalise what is kept and draw one token (``torch.multinomial`` with ``generator``).

A recurrent model predicts the next token *from an input token*, so an empty prime still needs
one input: ``start_id`` (what ``start_token_id(tokenizer)`` gives: the newline, so that the
text begins as after a line break, or id 0 when the vocabulary has no newline). It is fed
from a zero state and is not part of the output. ``rnnkit.models.scoring`` predicts the first
token of a scored text from the same start token.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import UserError


def check_sampling(length: int, temperature: float, top_k: int, top_p: float) -> None:
    """Raise ``UserError`` naming the bad sampling setting and the values that work."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise UserError(f"length must be a whole number of tokens >= 0, got {length!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature)
            and temperature >= 0):
        raise UserError(f"temperature must be a finite number >= 0 (0 = greedy, 1 = the "
                        f"model's own distribution), got {temperature!r}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise UserError(f"top-k must be a whole number >= 0 (0 = keep every token), "
                        f"got {top_k!r}")
    if not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise UserError(f"top-p must be in (0, 1] (1 = keep every token), got {top_p!r}")


def start_token_id(tokenizer) -> int:
    """The input that conditions the first token when there is no prime: the newline's id
    when the tokenizer has it as one token, else 0 (``<unk>`` for char and word vocabularies).

    Example:
        >>> from rnnkit.data import build_tokenizer
        >>> tok = build_tokenizer("char", "ab\\ncd")
        >>> tok.decode([start_token_id(tok)]) == "\\n"
        True
    """
    ids = tokenizer.encode("\n")
    if len(ids) == 1 and tokenizer.decode(ids) == "\n":
        return int(ids[0])
    return 0


def filter_probs(logits: Tensor, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0) -> Tensor:
    """The sampling distribution over the vocabulary for 1-D ``logits`` (see module doc).

    Example:
        >>> p = filter_probs(torch.tensor([0.0, 1.0, 2.0, 3.0]).log_softmax(0), top_k=2)
        >>> [round(v, 4) for v in p.tolist()]
        [0.0, 0.0, 0.2689, 0.7311]
    """
    if temperature == 0:
        probs = torch.zeros_like(logits, dtype=torch.float32)
        probs[logits.argmax()] = 1.0
        return probs
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if 0 < top_k < probs.numel():
        kth = torch.topk(probs, top_k).values[-1]
        probs = torch.where(probs >= kth, probs, 0.0)
        # ties at the k-th value would keep more than k: keep the first k of the sorted order
        if int((probs > 0).sum()) > top_k:
            keep = torch.zeros_like(probs, dtype=torch.bool)
            keep[torch.topk(probs, top_k).indices] = True
            probs = torch.where(keep, probs, 0.0)
    if top_p < 1:
        sorted_p, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_p, 0) - sorted_p  # mass of the more probable tokens
        total = sorted_p.sum()
        keep_sorted = before < top_p * total  # still short of p: this token is needed
        keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
        probs = torch.where(keep, probs, 0.0)
    return probs / probs.sum()


@contextlib.contextmanager
def one_thread(device: torch.device):
    """Run a batch-of-one recurrence on one CPU thread, the thread count restored after.

    A step at B = 1 is a small matrix-vector product: splitting it over threads buys little,
    and the threads' barrier at every step costs much when other processes share the cores
    (measured on 2 busy cores: 512 LSTM steps at H = 512 took 0.05 s on one thread, 0.1 to
    4 s on two)."""
    if device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _step(model: nn.Module, x: Tensor, state):
    """One forward in eval mode on one thread, the model's own mode (and the thread count)
    restored right after, so a paused generator changes nothing for its caller."""
    was_training = model.training
    model.eval()
    try:
        with one_thread(x.device):
            logits, state = model(x, state)
    finally:
        model.train(was_training)
    return logits[-1, 0], state


@torch.no_grad()  # torch wraps generator functions: grad is off only while this one runs
def generate(model: nn.Module, prime_ids: Sequence[int] | Tensor, length: int,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             generator: torch.Generator | None = None, *, start_id: int = 0) -> Iterator[int]:
    """Yield ``length`` token ids sampled after ``prime_ids`` (the prime is not yielded).

    ``model(x, state) -> (logits, state)`` takes time-major ``x`` of shape ``(T, B)`` and
    gives ``(T, B, V)`` logits. ``generator`` (a CPU ``torch.Generator``) makes the draw
    reproducible. An empty prime feeds ``start_id`` from a zero state (see module doc).

    Example:
        >>> import torch
        >>> from rnnkit.models.language_model import LanguageModel
        >>> _ = torch.manual_seed(0)
        >>> lm = LanguageModel(5, hidden=8, layers=1)
        >>> ids = list(generate(lm, [1, 2], 10, temperature=0))
        >>> len(ids), ids == list(generate(lm, [1, 2], 10, temperature=0))
        (10, True)
    """
    check_sampling(length, temperature, top_k, top_p)
    if length == 0:
        return
    device = next(model.parameters()).device
    prime = torch.as_tensor(list(prime_ids) if not isinstance(prime_ids, Tensor) else prime_ids,
                            dtype=torch.long).reshape(-1)
    if prime.numel() == 0:
        prime = torch.tensor([start_id])
    logits, state = _step(model, prime.to(device).unsqueeze(1), None)
    for i in range(length):
        probs = filter_probs(logits.cpu(), temperature, top_k, top_p)
        if temperature == 0:
            token = int(probs.argmax())
        else:
            token = int(torch.multinomial(probs, 1, generator=generator))
        yield token
        if i + 1 < length:  # the last token needs no forward
            logits, state = _step(model, torch.tensor([[token]], device=device), state)
