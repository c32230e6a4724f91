"""The two vocabularies of a sequence-to-sequence task: source tokens and target tokens.

Deck 002's encoder reads the source one token at a time; the decoder writes the target one
token at a time, starting from ``<s>`` and stopping when it writes ``</s>``. Each side has its
own vocabulary (the dates task reads "22 novembre 2026" and writes digits and dashes), built
from the training pairs: ``<pad>`` (id 0: the filler of a padded batch, never attended to and
never scored), ``<s>``, ``</s>``, ``<unk>``, then the tokens by frequency.

Tokens are characters (``char``, the default: any spelling, a small vocabulary) or words split
on whitespace (``word``: shorter sequences, but a word never seen in training is unknown).
Both sides are saved in one JSON file, ``checkpoints/vocab.json``, never a pickle.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
KINDS = ("char", "word")
FILENAME = "vocab.json"
FORMAT = "rnnkit-seq2seq-vocab"


class Vocab:
    """Tokens <-> ids for one side of the pairs.

    Example:
        >>> v = Vocab.build(["535+61", "12+7"], "char")
        >>> v.encode("61+12")
        [9, 5, 4, 5, 6]
        >>> v.decode(v.encode("61+12") + [EOS_ID, 9])   # stops at </s>
        '61+12'
        >>> v.encode("6x", strict=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rnnkit.errors.UserError: 'x' is not in the source vocabulary ... use only those
    """

    def __init__(self, kind: str, tokens: Sequence[str], side: str = "source"):
        if kind not in KINDS:
            raise UserError(f"unknown token kind {kind!r}; choose --tokens from "
                            f"{', '.join(KINDS)}")
        self.kind, self.side = kind, side
        self.tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], kind: str = "char", side: str = "source",
              max_size: int | None = None) -> Vocab:
        """The tokens of ``texts``, most frequent first (ties in first-seen order: the same
        texts always give the same ids); at most ``max_size`` of them plus the specials."""
        counts = Counter(t for text in texts for t in split(text, kind))
        ranked = sorted(counts, key=lambda t: -counts[t])  # stable: first seen among equals
        kept = ranked[:max_size] if max_size else ranked  # the most frequent
        if kind == "char":
            kept = sorted(kept)  # a character vocabulary reads best in code-point order
        return cls(kind, kept, side)

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        return split(text, self.kind)

    def join(self, tokens: Sequence[str]) -> str:
        return "".join(tokens) if self.kind == "char" else " ".join(tokens)

    def encode(self, text: str, strict: bool = False) -> list[int]:
        """Token ids of ``text`` (no ``<s>`` or ``</s>``). An unknown token becomes ``<unk>``,
        or with ``strict`` a ``UserError`` naming it: a model cannot read what it never saw."""
        tokens = self.split(text)
        if strict:
            unknown = [t for t in dict.fromkeys(tokens) if t not in self.index]
            if unknown:
                self._refuse(unknown)
        return [self.index.get(t, UNK_ID) for t in tokens]

    def _refuse(self, unknown: list[str]) -> None:
        what = "characters" if self.kind == "char" else "words"
        names = ", ".join(repr(t) for t in unknown[:5])
        seen = [t for t in self.tokens if t not in SPECIALS]
        shown = ", ".join(seen[:40]) + (" ..." if len(seen) > 40 else "")
        verb = "is" if len(unknown) == 1 else "are"
        raise UserError(f"{names} {verb} not in the {self.side} vocabulary ({what} seen in "
                        f"training: {shown}); use only those")

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``, up to the first ``</s>``; other specials are left out."""
        return self.join(self.decode_tokens(ids))

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= len(SPECIALS) or i == UNK_ID:
                out.append(self.tokens[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokens": self.tokens[len(SPECIALS):]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], side: str) -> Vocab:
        return cls(data["kind"], data["tokens"], side)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.kind, self.tokens) == (other.kind, other.tokens)

    def __repr__(self) -> str:
        return f"Vocab({self.side}, {self.kind}, {len(self)} tokens)"


def split(text: str, kind: str) -> list[str]:
    """Characters, or whitespace-separated words."""
    return list(text) if kind == "char" else text.split()


def save_vocabs(directory: str | Path, source: Vocab, target: Vocab) -> Path:
    """Both sides in ``directory/vocab.json`` (written atomically)."""
    from ..train.checkpoint import atomic_write_bytes

    path = Path(directory) / FILENAME
    data = {"format": FORMAT, "source": source.to_dict(), "target": target.to_dict()}
    atomic_write_bytes(path, json.dumps(data, ensure_ascii=False).encode("utf-8"))
    return path


def load_vocabs(directory: str | Path) -> tuple[Vocab, Vocab]:
    """(source, target) from ``directory/vocab.json``; a ``UserError`` names any damage."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        raise UserError(f"{path} is missing: this run has no vocabularies; restore it from a "
                        "copy or train again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"no \"format\": \"{FORMAT}\"")
        return Vocab.from_dict(data["source"], "source"), Vocab.from_dict(data["target"],
                                                                          "target")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is damaged ({e}); restore it from a copy or train "
                        "again") from e
