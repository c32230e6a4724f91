"""Generating from a trained conditioned language model: ``rnnkit.load(RUN_DIR).generate(...)``.

The same operation as ``rnnkit sample RUN --label L``: a generator run directory (``rnnkit train
generator --out DIR``) in, texts written for a chosen label out.

A text is a sequence between two end-of-text tokens: the model reads the end token from the
label's initial state, writes the text, and ends it with the end token again (training taught
it so). Sampling stops there, or after ``length`` tokens.

The token side is a small interface, the ``Codec`` below, so that another kind of sequence
plugs in beside text: anything with ``encode``, ``decode``, ``vocab_size`` and ``save`` (every
``rnnkit.data.tokenizers`` tokenizer is one); its ``end_id`` attribute, when it has one, is the
end-of-sequence token (else the newline, ``models.generate.start_token_id``), and a
``write(ids, path)`` method, when it has one, is what ``rnnkit sample --out PATH`` calls to write
a sample as a file (a music-event vocabulary would write MIDI there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from .errors import UserError
from .models.conditioned import ConditionedLM
from .models.generate import check_sampling, generate, start_token_id
from .models.scoring import total_nats


class Codec(Protocol):
    """Sequences <-> token ids: what a generator run needs of its tokenizer."""

    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def save(self, directory: str | Path) -> Path: ...


def end_id(codec: Codec) -> int:
    """The token that starts and ends every sequence: the codec's ``end_id``, else the
    newline (texts are one a line)."""
    own = getattr(codec, "end_id", None)
    return int(own) if own is not None else start_token_id(codec)


class Generator:
    """A trained conditioned language model with its tokenizer and label names.

    Attributes: ``model`` (the ``ConditionedLM``, eval mode), ``tokenizer``, ``labels``,
    ``config`` (the run's settings), ``path`` (the checkpoint loaded).

    Usually made by ``rnnkit.load(RUN_DIR)``; here from a fresh (untrained) model:

    Example:
        >>> import torch
        >>> from rnnkit.data.tokenizers import build_tokenizer
        >>> tok = build_tokenizer("char", "abc\\nxyz\\n")
        >>> _ = torch.manual_seed(0)
        >>> g = Generator(ConditionedLM(tok.vocab_size, num_labels=2, hidden=8), tok, ["a", "x"])
        >>> text = g.generate(label="x", prime="ab", length=20, seed=1)
        >>> text.startswith("ab") and "\\n" not in text and len(text) <= 22
        True
        >>> text == g.generate(label="x", prime="ab", length=20, seed=1)
        True
        >>> g.generate(label="z")
        Traceback (most recent call last):
        rnnkit.errors.UserError: unknown label 'z'; the labels are: a, x
    """

    def __init__(self, model: ConditionedLM, tokenizer: Codec, labels: Sequence[str],
                 config: dict[str, Any] | None = None, path: Path | None = None):
        self.model, self.tokenizer, self.labels = model.eval(), tokenizer, list(labels)
        self.config, self.path = dict(config or {}), path
        if len(self.labels) != model.config["num_labels"]:
            raise UserError(f"{path or 'the model'} knows {model.config['num_labels']} labels "
                            f"but the run names {len(self.labels)}; the checkpoint is from "
                            "another run: restore the run's own or train again")
        self.end = end_id(tokenizer)

    def label_id(self, label: str) -> int:
        """The id of ``label``; an unknown one is a ``UserError`` listing the labels."""
        if label not in self.labels:
            raise UserError(f"unknown label {label!r}; the labels are: {', '.join(self.labels)}")
        return self.labels.index(label)

    def generate_ids(self, label: str, prime_ids: Sequence[int] = (), length: int = 280,
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     generator: torch.Generator | None = None) -> list[int]:
        """The token ids written after ``prime_ids`` for ``label``: up to ``length``, the end
        token excluded (sampling stops there)."""
        check_sampling(length, temperature, top_k, top_p)
        given = self.model.given(torch.tensor([self.label_id(label)]))
        out = []
        for token in generate(given, [self.end, *prime_ids], length, temperature, top_k, top_p,
                              generator):
            if token == self.end:
                break
            out.append(token)
        return out

    def generate(self, label: str, prime: str = "", length: int = 280,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int | None = None, include_prime: bool = True) -> str:
        """One text for ``label``: ``prime`` and what the model writes after it, up to the end
        of the text or ``length`` tokens (``include_prime=False``: the continuation alone).
        ``seed`` makes it reproducible (None: a fresh draw). Sampling settings: see
        ``rnnkit.models.generate``."""
        return self.samples(label, 1, prime, length, temperature, top_k, top_p, seed,
                            include_prime)[0]

    def samples(self, label: str, count: int, prime: str = "", length: int = 280,
                temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                seed: int | None = None, include_prime: bool = True) -> list[str]:
        """``count`` texts for ``label``, drawn one after another from one seeded generator."""
        if not isinstance(count, int) or count < 1:
            raise UserError(f"count must be a whole number of texts >= 1, got {count!r}")
        self.label_id(label)
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        prime_ids = self.tokenizer.encode(prime)
        head = prime if include_prime else ""
        return [head + self.tokenizer.decode(self.generate_ids(label, prime_ids, length,
                                                               temperature, top_k, top_p, g))
                for _ in range(count)]

    def score(self, text: str, label: str) -> dict[str, float | int]:
        """``{tokens, chars, loss, bpc}`` of ``text`` written for ``label``, its end included
        (as the run's ``bpc``): the lower, the more the text reads as ``label``'s."""
        if not text:
            raise UserError("cannot score an empty text; give some text")
        ids = [*self.tokenizer.encode(text), self.end]
        given = self.model.given(torch.tensor([self.label_id(label)]))
        nats = total_nats(given, ids, self.end)
        return {"tokens": len(ids), "chars": len(text) + 1, "loss": nats / len(ids),
                "bpc": nats / math.log(2) / (len(text) + 1)}

    def __repr__(self) -> str:
        c = self.model.config
        return (f"Generator(cell={c['cell']!r}, hidden={c['hidden']}, layers={c['layers']}, "
                f"labels={self.labels!r})")


def load_generator(run_dir: str | Path, which: str = "best") -> Generator:
    """A generator run directory's model, tokenizer and labels (see ``rnnkit.load``)."""
    from .train.checkpoint import load_run

    run = load_run(run_dir, which)  # its checks of the directory, config and tokenizer
    if not isinstance(run.model, ConditionedLM):
        raise UserError(f"{run_dir} holds a {type(run.model).__name__}, not a conditioned "
                        "language model; this needs a run of rnnkit train generator")
    if run.tokenizer is None or not run.config.get("labels"):
        raise UserError(f"{run_dir} lacks its tokenizer (checkpoints/tokenizer.json) or its "
                        "labels (config.json); restore them from a copy or train again")
    return Generator(run.model, run.tokenizer, run.config["labels"], run.config, run.path)
