"""Using a trained language model from Python: ``rnnkit.load(RUN_DIR)``.

The same operations as ``rnnkit sample`` and ``rnnkit evaluate``: a trained run directory
(``rnnkit train --out DIR``) in, text or scores out.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError
from .models.generate import check_sampling, generate, start_token_id
from .models.scoring import score

# a byte-level BPE token may hold part of a character: hold decoded text back while it ends in
# the replacement character, for at most this many tokens (a UTF-8 character has <= 4 bytes)
_MAX_HELD = 8


class Model:
    """A trained language model with its tokenizer: generate text and score text.

    Attributes: ``model`` (the ``LanguageModel``, eval mode), ``tokenizer``, ``config`` (the
    run's resolved settings, ``config.json``), ``path`` (the checkpoint loaded).

    Usually made by ``rnnkit.load(RUN_DIR)``; built here from a fresh (untrained) model:

    Example:
        >>> from rnnkit.data import build_tokenizer
        >>> from rnnkit.models.language_model import LanguageModel
        >>> tok = build_tokenizer("char", "hello\\n")
        >>> m = Model(LanguageModel(tok.vocab_size, hidden=8), tok)
        >>> text = m.generate("he", length=20, seed=0)   # the prime, then 20 characters
        >>> text.startswith("he"), len(text)
        (True, 22)
        >>> m.generate("he", length=20, seed=0, include_prime=False) == text[2:]
        True
        >>> "".join(m.generate("he", length=20, seed=0, stream=True)) == text
        True
        >>> sorted(m.score("hello"))
        ['bpc', 'chars', 'loss', 'perplexity', 'tokens']
        >>> m.stream().feed("hel").shape                # p(next character) after "hel"
        torch.Size([6])
    """

    def __init__(self, model: nn.Module, tokenizer: Any, config: dict[str, Any] | None = None,
                 path: Path | None = None):
        if tokenizer is None:
            raise UserError("this run has no tokenizer (checkpoints/tokenizer.json is missing); "
                            "restore it from a copy or train again")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.config, self.path = dict(config or {}), path

    def generate(self, prime: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 stream: bool = False, include_prime: bool = True) -> str | Iterator[str]:
        """``prime`` followed by the ``length`` tokens the model writes after it, as
        ``rnnkit sample`` prints it; ``include_prime=False``: the continuation alone. ``length``
        counts generated tokens only, either way.

        ``seed`` makes the draw reproducible (None: a fresh random seed); the continuation is
        the same with or without the prime. ``stream=True`` returns an iterator of text pieces
        as they are generated (the prime first, as one piece); joined they give the same text.
        Sampling settings: see ``rnnkit.models.generate``. An empty prime starts the text as
        after a newline.
        """
        check_sampling(length, temperature, top_k, top_p)
        pieces = self._pieces(prime, length, temperature, top_k, top_p, seed, include_prime)
        return pieces if stream else "".join(pieces)

    def _pieces(self, prime: str, length: int, temperature: float, top_k: int, top_p: float,
                seed: int | None, include_prime: bool = True) -> Iterator[str]:
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        ids = generate(self.model, self.tokenizer.encode(prime), length, temperature, top_k,
                       top_p, g, start_id=start_token_id(self.tokenizer))
        pieces = _decode_stream(self.tokenizer, ids)
        # the prime as the user wrote it (not re-decoded: a word tokenizer's <unk> would show)
        return itertools.chain([prime], pieces) if include_prime and prime else pieces

    def score(self, text: str) -> dict[str, float | int]:
        """``{tokens, chars, loss, perplexity, bpc}`` of ``text`` (see ``models.scoring``)."""
        return score(self.model, self.tokenizer, text)

    def stream(self):
        """A ``streaming.TextStream``: feed text as it arrives, get p(next token) after each
        piece, the state carried between pieces."""
        from .streaming import TextStream

        return TextStream(self.model, self.tokenizer)

    def __repr__(self) -> str:
        cfg = getattr(self.model, "config", {})
        return (f"Model(cell={cfg.get('cell')!r}, hidden={cfg.get('hidden')}, "
                f"layers={cfg.get('layers')}, tokenizer={self.tokenizer.kind!r}, "
                f"vocab_size={self.tokenizer.vocab_size})")


def _decode_stream(tokenizer: Any, ids: Iterator[int]) -> Iterator[str]:
    """Text pieces for a stream of token ids, each emitted once it decodes cleanly."""
    held: list[int] = []
    for i in ids:
        held.append(i)
        text = tokenizer.decode(held)
        if not text.endswith("\ufffd") or len(held) >= _MAX_HELD:
            held = []
            if text:
                yield text
    if held:
        yield tokenizer.decode(held)


def load(run_dir: str | Path, which: str = "best") -> Model | Any:
    """Load a trained run directory (``best`` checkpoint, else ``last``): a language model's
    run as a ``Model`` (generate, score), an encoder-decoder's as a
    ``rnnkit.translation.Translator`` (translate), a classifier's as a
    ``rnnkit.classification.Predictor`` (predict, probabilities).

    Example:
        >>> m = rnnkit.load("runs/lm")                                  # doctest: +SKIP
        >>> print(m.generate("def ", length=100, temperature=0.8))      # doctest: +SKIP
        >>> text, attention = rnnkit.load("runs/add3").translate("16+535")  # doctest: +SKIP
        >>> rnnkit.load("runs/sentiment").predict(["what a day"])  # doctest: +SKIP
        [('positive', 0.71)]
    """
    from .train.checkpoint import load_run, read_task

    task = read_task(run_dir)
    if task == "seq2seq":
        from .translation import load_translator

        return load_translator(run_dir, which)
    if task == "classifier":
        from .classification import load_predictor

        return load_predictor(run_dir, which)
    if task == "generator":
        from .generation import load_generator

        return load_generator(run_dir, which)
    if task == "tagger":
        from .tagging import load_tagger

        return load_tagger(run_dir, which)
    if task == "word2vec":
        from .embeddings import load_embeddings

        return load_embeddings(run_dir, which)
    if task == "forecaster":
        from .forecasting import load_forecaster

        return load_forecaster(run_dir, which)
    run = load_run(run_dir, which)
    return Model(run.model, run.tokenizer, run.config, run.path)


def load_language_model(run_dir: str | Path, which: str = "best", command: str = "this") -> Model:
    """``load`` for the commands that need a language model (``sample``, ``evaluate``): another
    task's run is a ``UserError`` naming the command that uses it."""
    from .train.checkpoint import read_task

    task = read_task(run_dir)
    if task not in (None, "lm"):
        use = {"seq2seq": "rnnkit translate", "classifier": "rnnkit predict",
               "generator": "rnnkit sample --label", "tagger": "rnnkit predict",
               "word2vec": "rnnkit embed", "forecaster": "rnnkit forecast"}.get(
            task, f"the {task} commands")
        raise UserError(f"{run_dir} is a {task} run, not a language model: {command} needs a "
                        f"run of rnnkit train lm; use {use} with it")
    return load(run_dir, which)
