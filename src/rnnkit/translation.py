"""Using a trained encoder-decoder from Python: ``rnnkit.load(RUN_DIR).translate(text)``.

The same operation as ``rnnkit translate``: a seq2seq run directory (``rnnkit train seq2seq
--out DIR``) in, the decoded output and its attention matrix out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .data.vocab import Vocab
from .errors import UserError
from .models.seq2seq import Seq2Seq


@dataclass
class Translation:
    """One decoded output: ``text``, its ``attention`` (a row per output token and one for
    ``</s>``, a column per source token), the ``source`` text, the tokens of both sides, and
    the model's ``score`` (log-probability over GNMT's length penalty). Unpacks as
    ``text, attention``."""

    text: str
    attention: Tensor
    source: str
    source_tokens: list[str]
    output_tokens: list[str]
    score: float

    def __iter__(self) -> Iterator[Any]:
        return iter((self.text, self.attention))

    def heatmap(self, width: int = 0) -> str:
        """The attention as text: a row per output token, a column per source token, darker
        characters for more weight (deck 003's alignment picture, in a terminal)."""
        shades = " .:-=+*#%@"
        cols = [t if len(t) == 1 else t[:1] for t in self.source_tokens] if not width else \
            [t[:width].ljust(width) for t in self.source_tokens]
        label = max([len(t) for t in self.output_tokens] + [1])
        lines = [" " * (label + 1) + "".join(c if c != " " else "\u2423" for c in cols)]
        for tok, row in zip(self.output_tokens, self.attention.tolist()):
            cells = "".join(shades[min(9, int(w * 10))] * max(1, width) for w in row)
            lines.append(f"{tok:>{label}} {cells}")
        return "\n".join(lines)


class Translator:
    """A trained encoder-decoder with its two vocabularies.

    Attributes: ``model`` (the ``Seq2Seq``, eval mode), ``source`` and ``target`` (``Vocab``),
    ``config`` (the run's settings), ``path`` (the checkpoint loaded).

    Usually made by ``rnnkit.load(RUN_DIR)``; here from a fresh (untrained) model:

    Example:
        >>> from rnnkit.data.vocab import Vocab
        >>> src, tgt = Vocab.build(["12+3"]), Vocab.build(["15"], side="target")
        >>> t = Translator(Seq2Seq(len(src), len(tgt), hidden=8, embed=4, max_length=5), src, tgt)
        >>> out = t.translate("3+12")
        >>> text, attention = out                   # untrained: some digits, up to 5 tokens
        >>> attention.shape[1], len(out.output_tokens) == attention.shape[0]
        (4, True)
        >>> t.translate("3*12")                                      # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rnnkit.errors.UserError: '*' is not in the source vocabulary ...
    """

    def __init__(self, model: Seq2Seq, source: Vocab, target: Vocab,
                 config: dict[str, Any] | None = None, path: Path | None = None):
        self.model, self.source, self.target = model.eval(), source, target
        self.config, self.path = dict(config or {}), path
        if len(source) != model.config["source_vocab"] or \
                len(target) != model.config["target_vocab"]:
            raise UserError(f"{path or 'the model'} reads {model.config['source_vocab']} and "
                            f"writes {model.config['target_vocab']} tokens, but the run's "
                            f"vocabularies have {len(source)} and {len(target)}: the checkpoint "
                            "is from another run; restore the run's own or train again")

    def translate(self, text: str, beam: int = 1, length_penalty: float = 0.6) -> Translation:
        """Decode ``text``: greedy (``beam=1``) or a beam search of ``beam`` hypotheses.
        Surrounding whitespace is dropped, as training dropped it from every pair.
        A token the model never saw in training is a ``UserError`` naming it. A run trained
        with ``--reverse`` reads ``text`` reversed, as it learnt to."""
        text = text.strip()  # as training read each side of its pairs (data.pairs)
        ids = self.source.encode(text, strict=True)
        if not ids:
            raise UserError("the input is empty: give the text to translate")
        reverse = bool(self.config.get("reverse"))  # trained on reversed sources (--reverse)
        src = torch.tensor(ids[::-1] if reverse else ids)
        with torch.no_grad():
            out, score = self.model.beam_search(src, beam, length_penalty)
            attention = self.model.attention_of(src, out)
        if reverse:  # columns in the order the user wrote the source
            attention = attention.flip(-1)
        tokens = self.target.decode_tokens(out)
        finished = len(out) < self.model.max_length
        return Translation(self.target.join(tokens), attention[:len(out) + finished], text,
                           self.source.split(text), tokens + (["</s>"] if finished else []),
                           score)

    def __repr__(self) -> str:
        c = self.model.config
        return (f"Translator(cell={c['cell']!r}, hidden={c['hidden']}, "
                f"attention={c['attention']!r}, tokens={self.source.kind!r})")


def load_translator(run_dir: str | Path, which: str = "best") -> Translator:
    """A seq2seq run directory's model and vocabularies (see ``rnnkit.load``)."""
    from .data.vocab import load_vocabs
    from .train.checkpoint import load_task_run

    run = load_task_run(run_dir, which, Seq2Seq, "an encoder-decoder", "seq2seq")
    source, target = load_vocabs(Path(run_dir) / "checkpoints")
    return Translator(run.model, source, target, run.config, run.path)
