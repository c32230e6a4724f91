"""word2vec's data (deck 001): words, a vocabulary, subsampling, window pairs, negatives.

A text becomes sentences of lowercase words: its paragraphs (windows never cross a blank
line), or its lines when the paragraphs average more than ``LINES_PER_PARAGRAPH`` lines (a
file of one document per line, with no or only stray blank lines: gensim's ``LineSentence``).
The vocabulary keeps the words seen at least ``min_count`` times, most frequent first
(gensim's order); the rest are dropped before the windows are taken, as word2vec.c does.

* **Training pairs** (deck 001's table): each word of a sentence (the centre) with each word
  at most ``window`` places before or after it, in order. With a *dynamic window* each centre
  looks only ``window - b`` places each way, ``b`` drawn uniformly from ``0 .. window-1``:
  near words count more, as in word2vec.c.
* **Subsampling** of frequent words: a word of count ``c`` in a corpus of ``N`` words is kept
  with probability ``(sqrt(c / (s N)) + 1) (s N) / c`` (word2vec.c's formula, capped at 1;
  ``s = sample``, 1e-3 by default): "the" is mostly dropped, rare words always stay.
* **Negatives** are drawn with probability ``count^0.75 / sum``: the cumulative table here,
  searched with a uniform number below its last entry.

Example:
    >>> training_pairs("The quick brown fox jumps over the lazy dog.", window=2)[:5]
    [('the', 'quick'), ('the', 'brown'), ('quick', 'the'), ('quick', 'brown'), ('quick', 'fox')]
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError

WORD = re.compile(r"\w+(?:['’]\w+)*")
PARAGRAPH = re.compile(r"\n\s*\n")
MAX_SENTENCE = 10_000  # words: a longer paragraph is cut into pieces this long (gensim's cap)
# Prose paragraphs average a few lines (the built-in corpora 1 to 6), while a file of one
# document a line is one paragraph of all its lines (or a few, if blank lines are stray): so
# more lines a paragraph than this on average mean the lines are the documents
LINES_PER_PARAGRAPH = 20
POWER = 0.75  # the unigram table's exponent (Mikolov et al. 2013)


def words(text: str) -> list[str]:
    """The lowercase words of ``text`` (letters, digits and inner apostrophes).

    Example:
        >>> words("The cat's 2 toys, e.g. Ball.")
        ['the', "cat's", '2', 'toys', 'e', 'g', 'ball']
    """
    return WORD.findall(text.lower())


def sentences(text: str) -> list[list[str]]:
    """``text`` as sentences of words: one per paragraph (blank lines between them), or one
    per line when ``one_document_per_line`` (module doc), cut into pieces of at most
    ``MAX_SENTENCE`` words; empty ones left out.

    Example:
        >>> sentences("a b\\nc\\n\\nd"), sentences("a b\\n" * 21)[:2]
        ([['a', 'b', 'c'], ['d']], [['a', 'b'], ['a', 'b']])
    """
    out = []
    for piece in text.splitlines() if one_document_per_line(text) else PARAGRAPH.split(text):
        ws = words(piece)
        out += [ws[i:i + MAX_SENTENCE] for i in range(0, len(ws), MAX_SENTENCE)]
    return out


def one_document_per_line(text: str) -> bool:
    """Whether ``text``'s paragraphs average more than ``LINES_PER_PARAGRAPH`` non-blank lines:
    then its lines, not its paragraphs, are the sentences."""
    lines = sum(1 for line in text.splitlines() if line.strip())
    paragraphs = sum(1 for p in PARAGRAPH.split(text) if p.strip())
    return lines > LINES_PER_PARAGRAPH * max(paragraphs, 1)


@dataclass
class Vocab:
    """The words kept for training, most frequent first, and their counts.

    Example:
        >>> v = Vocab.build([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
        >>> v.words, v.counts.tolist(), v.index["b"]
        (['a', 'b'], [3, 2], 1)
    """

    words: list[str]
    counts: np.ndarray  # int64, (V,)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, corpus: Iterable[list[str]], min_count: int = 5,
              max_size: int | None = None) -> Vocab:
        """The words of ``corpus`` seen at least ``min_count`` times (at most ``max_size`` of
        them), by count, ties in order of first appearance (Python's stable sort)."""
        counts = Counter(w for sentence in corpus for w in sentence)
        if not counts:
            raise UserError("the corpus has no words; give a text with words in it")
        kept = sorted(((w, c) for w, c in counts.items() if c >= min_count),
                      key=lambda wc: -wc[1])[:max_size]
        if not kept:
            top = max(counts.values())
            raise UserError(f"no word occurs {min_count} times (the most frequent, "
                            f"{counts.most_common(1)[0][0]!r}, {top}): --min-count "
                            f"{min_count} leaves the vocabulary empty; lower --min-count "
                            f"(to {top} or less) or give more text")
        return cls([w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64))

    def save(self, path: str | Path) -> None:
        from ..train.checkpoint import atomic_write_bytes

        text = json.dumps({"words": self.words, "counts": self.counts.tolist()})
        atomic_write_bytes(path, text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(list(data["words"]), np.array(data["counts"], dtype=np.int64))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"cannot read the vocabulary {path} ({e}); the run directory is "
                            "damaged: train again") from e


@dataclass
class Encoded:
    """A corpus as word ids: sentence ``s`` is ``tokens[bounds[s]:bounds[s + 1]]``.

    Example:
        >>> v = Vocab.build([["a", "b", "a"]], min_count=1)
        >>> e = encode([["a", "b", "zebra"], ["zebra"], ["b", "a"]], v)
        >>> e.tokens.tolist(), e.bounds.tolist(), e.sentence_ids().tolist()
        ([0, 1, 1, 0], [0, 2, 4], [0, 0, 1, 1])
    """

    tokens: Tensor  # int32 (N,)
    bounds: Tensor  # int64 (S + 1,)

    @property
    def words(self) -> int:
        return int(self.tokens.numel())

    def sentence_ids(self) -> Tensor:
        """The sentence of each token (N,)."""
        lengths = self.bounds[1:] - self.bounds[:-1]
        return torch.repeat_interleave(torch.arange(len(lengths)), lengths)

    def slice(self, s0: int, s1: int) -> Encoded:
        """Sentences ``s0 .. s1 - 1``."""
        b = self.bounds[s0:s1 + 1]
        return Encoded(self.tokens[int(b[0]):int(b[-1])], b - b[0])


def encode(corpus: Iterable[list[str]], vocab: Vocab) -> Encoded:
    """The corpus's words as ids, the out-of-vocabulary ones dropped (as word2vec.c does), and
    sentences left empty by that dropped too."""
    tokens, bounds = [], [0]
    for sentence in corpus:
        ids = [i for i in map(vocab.index.get, sentence) if i is not None]
        if ids:
            tokens += ids
            bounds.append(len(tokens))
    return Encoded(torch.tensor(tokens, dtype=torch.int32), torch.tensor(bounds))


def keep_probabilities(counts: np.ndarray, sample: float) -> Tensor:
    """Each word's chance to stay when frequent words are subsampled (module doc); all 1 when
    ``sample`` is 0.

    Example:
        >>> [round(p, 4) for p in keep_probabilities(np.array([1000, 10, 1]), 1e-2).tolist()]
        [0.1107, 1.0, 1.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return torch.ones(len(counts))
    threshold = sample * counts.sum()
    keep = (np.sqrt(counts / threshold) + 1) * threshold / counts
    return torch.tensor(np.minimum(keep, 1.0), dtype=torch.float32)


def unigram_table(counts: np.ndarray, power: float = POWER) -> Tensor:
    """The cumulative table of ``count ** power`` (int64, scaled so its last entry is 2^31 - 1,
    gensim's domain): word ``i`` is drawn when a uniform integer below the last entry falls in
    ``[table[i-1], table[i])``."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    cum = np.cumsum(weights) / weights.sum()
    return torch.tensor(np.maximum(1, np.round(cum * (2 ** 31 - 1))), dtype=torch.int64)


def draw_negatives(table: Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None
                   ) -> Tensor:
    """Words drawn from the unigram table (``unigram_table``), ``shape`` of them."""
    r = torch.randint(0, int(table[-1]), shape, generator=generator, device=table.device)
    return torch.searchsorted(table, r, right=True)


def window_pairs(sentence: Tensor, window: int, reduced: Tensor | None = None
                 ) -> tuple[Tensor, Tensor]:
    """The positions (centre, context) of every training pair, vectorised: ``sentence[i]`` is
    the sentence of token ``i``; a centre ``i`` pairs with each ``j != i`` of its sentence with
    ``|i - j| <= window - reduced[i]`` (``reduced``: None, the deterministic full window).
    Sorted by centre, then context position: deck 001's table order.

    Example:
        >>> c, x = window_pairs(torch.tensor([0, 0, 0, 1, 1]), window=1)
        >>> list(zip(c.tolist(), x.tolist()))
        [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)]
    """
    if window < 1:
        raise UserError(f"--window must be at least 1, got {window}")
    n = len(sentence)
    i = torch.arange(n, device=sentence.device)
    reach = window - (reduced if reduced is not None else torch.zeros_like(i))
    centres, contexts = [], []
    for off in [*range(-window, 0), *range(1, window + 1)]:
        j = i + off
        ok = (j >= 0) & (j < n) & (reach >= abs(off))
        ok &= sentence[j.clamp(0, n - 1)] == sentence
        centres.append(i[ok])
        contexts.append(j[ok])
    c, x = torch.cat(centres), torch.cat(contexts)
    order = torch.argsort(c * n + x)
    return c[order], x[order]


def training_pairs(text: str, window: int) -> list[tuple[str, str]]:
    """Deck 001's training samples of ``text``: (centre word, context word) for every word and
    each neighbour at most ``window`` words away, in order (no subsampling, fixed window)."""
    corpus = sentences(text)
    flat = [w for s in corpus for w in s]
    sid = torch.repeat_interleave(torch.arange(len(corpus)), torch.tensor([len(s) for s in corpus],
                                                                          dtype=torch.long))
    c, x = window_pairs(sid, window)
    return [(flat[a], flat[b]) for a, b in zip(c.tolist(), x.tolist())]
