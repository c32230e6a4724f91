"""Tokenizers: characters, words, and byte-level BPE, saved as one plain JSON file.

Deck 000: a language model predicts the next *token*; what a token is (a character, a word,
or a subword unit learned from the corpus) is the tokenizer's choice. Every tokenizer saves to
``tokenizer.json`` (its kind and vocabulary, never a pickle) and loads back from it.

* ``char``: every character seen in the training text, plus ``<unk>`` (id 0) so any text can
  be scored. Round trip is exact on text whose characters were seen.
* ``word``: words, single punctuation marks and whitespace runs (a word keeps the one space
  before it, as GPT-2 does, so ``"".join(tokens)`` restores the text), the most frequent
  ``vocab_size - 1`` of them plus ``<unk>``. Round trip is exact when no token is unknown.
* ``bpe``: byte-level BPE from the HF ``tokenizers`` library trained on the text (deck 000:
  "an optimal tokenization is learned from the corpus"). Every byte is in the alphabet, so
  round trip is exact for any text.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserError

FILENAME = "tokenizer.json"
FORMAT = "rnnkit-tokenizer"
UNK = "<unk>"
UNK_CHAR = "\ufffd"  # what an unknown character decodes to (the Unicode replacement char)
KINDS = ("char", "word", "bpe")
DEFAULT_VOCAB = {"word": 10_000, "bpe": 1000}

# a word with its leading space, one punctuation mark with its leading space, whitespace runs
# (all but the last space when a word follows, so that space joins the word)
WORD_PATTERN = r" ?\w+| ?[^\w\s]|\s+(?!\S)|\s+"


def count_chars(text: str) -> int:
    """Characters in ``text``: bits per char = total nats / count_chars / ln 2, any tokenizer."""
    return len(text)


class Tokenizer:
    """Base class: text <-> token ids, saved as ``tokenizer.json``.

    Example:
        >>> tok = build_tokenizer("char", "hello")
        >>> tok.encode("hell"), tok.decode(tok.encode("hello"))
        ([2, 1, 3, 3], 'hello')
    """

    kind: ClassVar[str] = ""

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def _payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/tokenizer.json`` atomically (temporary name, then rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FILENAME
        data = {"format": FORMAT, "version": 1, "kind": self.kind, **self._payload()}
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tokenizer.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @staticmethod
    def load(directory_or_file: str | Path) -> Tokenizer:
        """Read a ``tokenizer.json`` (or the one inside a directory) written by ``save``."""
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise UserError(f"no tokenizer file at {path}; pass a run directory or the "
                            f"{FILENAME} that training wrote")
        bad = f"{path} is not an rnnkit tokenizer file"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{bad} (not valid JSON: {e}); retrain or restore the file") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f"{bad} (no \"format\": \"{FORMAT}\" entry); pass the {FILENAME} "
                            "that rnnkit wrote")
        kind = data.get("kind")
        if kind not in _CLASSES:
            raise UserError(f"{bad} (unknown kind {kind!r}, expected one of {', '.join(KINDS)})")
        try:
            return _CLASSES[kind]._from_payload(data)
        except Exception as e:  # whatever is damaged, say which file
            raise UserError(f"{bad} (its {kind} vocabulary is damaged: {e}); retrain or "
                            "restore the file") from e

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class _VocabTokenizer(Tokenizer):
    """A fixed list of token strings; id 0 is ``<unk>``."""

    unk_id: ClassVar[int] = 0

    def __init__(self, vocab: Sequence[str]):
        vocab = list(vocab)
        if not vocab or vocab[0] != UNK or len(set(vocab)) != len(vocab):
            raise ValueError(f"vocab must start with {UNK!r} and hold distinct strings")
        if not all(isinstance(t, str) for t in vocab):
            raise TypeError("vocab entries must be strings")
        self.vocab = vocab
        self.stoi = {t: i for i, t in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_to_token(self, i: int) -> str:
        return self.vocab[i]

    def _payload(self) -> dict[str, Any]:
        return {"vocab": self.vocab}

    @classmethod
    def _from_payload(cls, data: dict[str, Any]) -> Tokenizer:
        return cls(data["vocab"])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.vocab == self.vocab

    __hash__ = None  # type: ignore[assignment]


class CharTokenizer(_VocabTokenizer):
    """One token per character; unseen characters encode to ``<unk>`` (id 0).

    Example:
        >>> tok = CharTokenizer.train("abcab")
        >>> tok.vocab, tok.encode("cab?")
        (['<unk>', 'a', 'b', 'c'], [3, 1, 2, 0])
    """

    kind = "char"

    def __init__(self, vocab: Sequence[str]):
        super().__init__(vocab)
        if any(len(t) != 1 for t in self.vocab[1:]):
            raise ValueError("a char vocabulary holds single characters")

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None) -> CharTokenizer:
        """All characters of ``text`` (sorted), or the ``vocab_size - 1`` most frequent."""
        counts = Counter(text)
        chars = sorted(counts)
        if vocab_size is not None and len(chars) > vocab_size - 1:
            chars = sorted(sorted(counts, key=lambda c: (-counts[c], c))[: vocab_size - 1])
        return cls([UNK, *chars])

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(c, 0) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        vocab = self.vocab
        return "".join(vocab[i] if i else UNK_CHAR for i in ids)


class WordTokenizer(_VocabTokenizer):
    """Words (with their leading space), punctuation marks and whitespace runs.

    Example:
        >>> tok = WordTokenizer.train("the cat, the hat.")
        >>> tok.decode(tok.encode("the hat, the cat."))
        'the hat, the cat.'
        >>> tok.decode(tok.encode("the dog."))
        'the<unk>.'
    """

    kind = "word"
    pattern = re.compile(WORD_PATTERN)

    @classmethod
    def split(cls, text: str) -> list[str]:
        return cls.pattern.findall(text)

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None) -> WordTokenizer:
        """The ``vocab_size - 1`` most frequent tokens of ``text`` (ties alphabetical)."""
        vocab_size = DEFAULT_VOCAB["word"] if vocab_size is None else vocab_size
        if vocab_size < 2:
            raise ValueError(f"word vocab_size must be at least 2, got {vocab_size}")
        counts = Counter(cls.split(text))
        kept = sorted(counts, key=lambda t: (-counts[t], t))[: vocab_size - 1]
        return cls([UNK, *kept])

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(t, 0) for t in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        vocab = self.vocab
        return "".join(vocab[i] for i in ids)


class BPETokenizer(Tokenizer):
    """Byte-level BPE (HF ``tokenizers``): any text encodes, and decodes back exactly.

    Example:
        >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=270)
        >>> tok.decode(tok.encode("lowest ünïcödé 🙂")) == "lowest ünïcödé 🙂"
        True
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer: Any):
        self.hf = hf_tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        vocab_size = DEFAULT_VOCAB["bpe"] if vocab_size is None else vocab_size
        if vocab_size < 256:
            raise UserError(f"byte-level BPE needs a vocab size of at least 256 (one per "
                            f"byte), got {vocab_size}; raise it")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, show_progress=False, special_tokens=[],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no unknowns
        )
        hf.train_from_iterator(_chunks(text), trainer=trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        if len(text) <= 1 << 15:
            return self.hf.encode(text).ids
        return [i for e in self.hf.encode_batch(_chunks(text)) for i in e.ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids))

    def id_to_token(self, i: int) -> str:
        return self.hf.id_to_token(i)

    def _payload(self) -> dict[str, Any]:
        return {"tokenizer": self.hf.to_str()}

    @classmethod
    def _from_payload(cls, data: dict[str, Any]) -> Tokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(data["tokenizer"]))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.hf.to_str() == self.hf.to_str()

    __hash__ = None  # type: ignore[assignment]


# A newline between two non-space characters is a pre-token of its own under the byte-level
# regex, so cutting just after it changes no token: long texts encode in parallel pieces.
_SAFE_CUT = re.compile(r"(?<=\S)\n(?=\S)")


def _chunks(text: str, size: int = 1 << 15) -> list[str]:
    """Pieces of about ``size`` chars, cut only where the tokenization cannot change."""
    pieces, start = [], 0
    while start < len(text):
        m = _SAFE_CUT.search(text, start + size)
        end = len(text) if m is None else m.end()
        pieces.append(text[start:end])
        start = end
    return pieces


class NoteTokenizer(_VocabTokenizer):
    """Note events as words (``data.music.event_word``: ``PITCH:QUARTERS``, a rest
    ``r:QUARTERS``), separated by spaces, a newline ending a piece: the vocabulary of music
    generation (deck 003's music demo). ``write`` turns a sample into a MIDI file, which is what
    ``rnnkit sample --out tune.mid`` calls. Not a ``--tokenizer`` choice: the music data set
    brings it.

    Example:
        >>> tok = NoteTokenizer.train("60:1 62:0.5 r:0.5\\n67:2\\n")
        >>> tok.decode(tok.encode("62:0.5 60:1\\n67:2"))
        '62:0.5 60:1\\n67:2'
    """

    kind = "notes"
    pattern = re.compile(r"\n|[^\s]+")

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None) -> NoteTokenizer:
        """Every event word of ``text`` and the newline (the ``vocab_size - 1`` most frequent
        when given)."""
        counts = Counter(cls.pattern.findall(text))
        kept = sorted(counts, key=lambda t: (-counts[t], t))
        return cls([UNK, *(kept if vocab_size is None else kept[:vocab_size - 1])])

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(t, 0) for t in self.pattern.findall(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return re.sub(r" ?\n ?", "\n", " ".join(self.vocab[i] for i in ids))

    def write(self, ids: Sequence[int], path: str | Path) -> Path:
        """The events of ``ids`` (unknown tokens, piece ends and the rests before the first
        note and after the last left out) as a MIDI file."""
        from . import music

        words = [self.vocab[i] for i in ids if i != self.unk_id and self.vocab[i] != "\n"]
        while words and words[0].startswith("r:"):  # silence before the first note or after
            words.pop(0)                             # the last is not in a MIDI file
        while words and words[-1].startswith("r:"):
            words.pop()
        if not words:
            raise UserError(f"the sample ended before its first note, so there is nothing to "
                            f"write to {path}; draw another (a different --seed) or train longer")
        return music.write_midi([music.parse_event(w) for w in words], path)


_CLASSES: dict[str, type] = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer,
                             "notes": NoteTokenizer}


def build_tokenizer(kind: str, text: str, vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of ``kind`` ("char" | "word" | "bpe") on ``text``.

    Example:
        >>> build_tokenizer("char", "hello").vocab_size
        5
    """
    if kind not in _CLASSES:
        raise UserError(f"unknown tokenizer {kind!r}; use one of {', '.join(KINDS)}")
    if not text:
        raise ValueError("cannot build a tokenizer from empty text")
    if vocab_size is not None and vocab_size < 2:
        raise UserError(f"vocab size {vocab_size} is too small; give at least 2 (256 for bpe)")
    return _CLASSES[kind].train(text, vocab_size)
