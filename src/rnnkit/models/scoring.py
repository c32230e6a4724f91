"""Scoring text with a language model: loss, perplexity and bits per character.

Every token of the text is predicted, the first one from the start token (the same input
``generate`` feeds for an empty prime: the newline, see ``generate.start_token_id``), the
others from the tokens before them. So the predicted tokens cover the whole text, ``chars`` is
its length (``count_chars``), and

* ``loss``       = total nats / tokens   (cross-entropy per predicted token),
* ``perplexity`` = exp(loss),
* ``bpc``        = total nats / ln 2 / chars,

which makes ``bpc`` comparable between char, word and BPE models (and with the n-gram
baseline's ``bits_per_char``, which also predicts every character of the text).

The text runs in chunks of ``chunk`` tokens with the recurrent state carried across (time-major
``(T, 1)``), so a long text needs memory for one chunk only and scores exactly as one pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tokenizers import count_chars
from ..errors import UserError
from .generate import one_thread, start_token_id


@torch.no_grad()
def total_nats(model: nn.Module, ids: list[int] | torch.Tensor, start_id: int = 0,
               chunk: int = 2048) -> float:
    """-ln P(ids) under ``model``: token 0 given ``start_id``, token t given the ones before.

    Example:
        >>> import torch
        >>> from rnnkit.models.language_model import LanguageModel
        >>> lm = LanguageModel(7, hidden=8)
        >>> ids = torch.randint(7, (100,)).tolist()
        >>> abs(total_nats(lm, ids, chunk=9) - total_nats(lm, ids, chunk=1000)) < 1e-3
        True
    """
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of tokens, got {chunk}")
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    stream = torch.cat([torch.tensor([start_id]), ids]).to(device)  # inputs then targets
    was_training = model.training
    model.eval()
    total, state = 0.0, None
    try:
        with one_thread(device):  # a batch of one: see generate.one_thread
            for s in range(0, len(ids), chunk):
                e = min(s + chunk, len(ids))
                x, y = stream[s:e].unsqueeze(1), stream[s + 1:e + 1]  # (T, 1) in, T targets
                logits, state = model(x, state)
                total += float(F.cross_entropy(logits[:, 0].float(), y, reduction="sum"))
    finally:
        model.train(was_training)
    return total


def score(model: nn.Module, tokenizer, text: str, chunk: int = 2048) -> dict[str, float | int]:
    """``{tokens, chars, loss, perplexity, bpc}`` of ``text`` (see the module doc).

    Example:
        >>> from rnnkit.data import build_tokenizer
        >>> from rnnkit.models.language_model import LanguageModel
        >>> tok = build_tokenizer("char", "hello world")
        >>> s = score(LanguageModel(tok.vocab_size, hidden=8), tok, "hello")
        >>> s["tokens"], s["chars"], s["bpc"] > 0
        (5, 5, True)
    """
    if not text:
        raise UserError("cannot score an empty text; give some text")
    ids = tokenizer.encode(text)
    nats = total_nats(model, ids, start_token_id(tokenizer), chunk)
    tokens, chars = len(ids), count_chars(text)
    loss = nats / tokens
    return {"tokens": tokens, "chars": chars, "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),  # exp overflows a float past ~709
            "bpc": nats / math.log(2) / chars}
