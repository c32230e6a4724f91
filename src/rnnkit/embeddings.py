"""Using word vectors: ``rnnkit.load(WORD2VEC_RUN)`` or ``Embeddings.from_word2vec(FILE)``.

Nearest neighbours and analogies by cosine similarity (deck 000: king - man + woman ~ queen),
the standard evaluations (WordSim-353 and SimLex-999: Spearman correlation of the cosines
with human scores; Google's analogy questions: accuracy over those whose four words are all in
the vocabulary, with how many were skipped), word2vec text export and import, and a 2-D PCA
plot of chosen words. The evaluations follow gensim's ``KeyedVectors.evaluate_word_pairs`` and
``evaluate_word_analogies``: words folded to lowercase, questions with unknown words skipped;
a word-pair correlation over fewer than ``MIN_PAIRS`` known pairs is not measured (NaN).

Example:
    >>> e = Embeddings(["king", "queen", "man", "woman"],
    ...                torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.2, 1.0], [0.2, -1.0]]))
    >>> [(w, round(s, 2)) for w, s in e.analogy("king", "man", "woman", n=1)]
    [('queen', 0.96)]
    >>> [w for w, _ in e.neighbours("king", n=2)]
    ['man', 'queen']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import UserError
from .models.word2vec import cosine_table, pca_2d

QUESTION_BATCH = 1024  # analogy questions scored in one product with the vocabulary
# Fewest known pairs a word-pair correlation is measured on: by chance alone a Spearman
# correlation over n pairs lies within about 1.96 / sqrt(n - 1) of 0 (95 %): +-0.65 at 10
# pairs, +-0.36 at 30; with fewer, a score cannot tell trained vectors (WordSim-353 0.2 to
# 0.7) from random ones
MIN_PAIRS = 30


class Embeddings:
    """Words and their vectors (N, D), with the operations of the module doc."""

    def __init__(self, words: Sequence[str], vectors: Tensor, config: dict[str, Any] | None = None,
                 path: Path | None = None):
        if len(words) != len(vectors):
            raise UserError(f"{len(words)} words but {len(vectors)} vectors")
        self.words, self.vectors = list(words), vectors.float()
        self.config, self.path = dict(config or {}), path
        self.index = {w: i for i, w in enumerate(self.words)}
        self.folded: dict[str, int] = {}
        for i, w in enumerate(self.words):
            self.folded.setdefault(w.lower(), i)
        self.unit = cosine_table(self.vectors)

    # ---- look-ups ---------------------------------------------------------------------------
    def find(self, word: str) -> int | None:
        """The row of ``word`` (as written, else the first the same but for case), or None."""
        i = self.index.get(word)
        return self.folded.get(word.lower()) if i is None else i

    def row(self, word: str) -> int:
        i = self.find(word)
        if i is None:
            raise UserError(f"{word!r} is not in the vocabulary ({len(self.words):,} words, "
                            f"e.g. {', '.join(self.words[:5])}); try a word of the corpus, or "
                            "train with a lower --min-count")
        return i

    def vector(self, word: str) -> Tensor:
        """The vector of ``word`` (a ``UserError`` if it has none)."""
        return self.vectors[self.row(word)]

    def similarity(self, a: str, b: str) -> float:
        return float(self.unit[self.row(a)] @ self.unit[self.row(b)])

    def _ranked(self, query: Tensor, leave_out: list[int], n: int) -> list[tuple[str, float]]:
        sims = self.unit @ cosine_table(query[None])[0]
        sims[leave_out] = -float("inf")
        top = torch.topk(sims, min(n, len(self.words) - len(set(leave_out))))
        return [(self.words[i], float(s)) for s, i in zip(top.values, top.indices.tolist())]

    def neighbours(self, word: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` words most similar to ``word`` (cosine), the word itself left out."""
        i = self.row(word)
        return self._ranked(self.unit[i], [i], n)

    def analogy(self, a: str, b: str, c: str, n: int = 10) -> list[tuple[str, float]]:
        """The words nearest ``a - b + c`` (unit vectors; king man woman -> queen), the three
        query words left out."""
        rows = [self.row(w) for w in (a, b, c)]
        return self._ranked(self.unit[rows[0]] - self.unit[rows[1]] + self.unit[rows[2]],
                            rows, n)

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate_pairs(self, name: str) -> dict[str, float]:
        """Spearman correlation of the cosines with a word-pair set's human scores
        (``wordsim353`` or ``simlex999``), over the pairs with both words known (NaN when
        fewer than ``MIN_PAIRS``); ``pairs`` used and ``skipped``."""
        from .data.wordsets import word_pairs

        sims, gold, skipped = [], [], 0
        for a, b, score in word_pairs(name):
            i, j = self.folded.get(a.lower()), self.folded.get(b.lower())
            if i is None or j is None:
                skipped += 1
                continue
            sims.append(float(self.unit[i] @ self.unit[j]))
            gold.append(score)
        few = len(sims) < MIN_PAIRS
        rho = float("nan") if few else spearman(np.array(sims), np.array(gold))
        return {"spearman": rho, "pairs": len(sims), "skipped": skipped}

    def evaluate_analogies(self) -> dict[str, float]:
        """Accuracy on the analogy questions whose four words are known (a b c d: is
        ``b - a + c`` nearest to d, a, b, c left out?); ``questions`` answered, ``skipped``."""
        from .data.wordsets import analogy_questions

        ids, skipped = [], 0
        for _, *four in analogy_questions():
            rows = [self.folded.get(w.lower()) for w in four]
            if None in rows:
                skipped += 1
            else:
                ids.append(rows)
        correct = 0
        q = torch.tensor(ids, dtype=torch.long).view(-1, 4)
        for start in range(0, len(q), QUESTION_BATCH):
            a, b, c, d = q[start:start + QUESTION_BATCH].T
            sims = (self.unit[b] - self.unit[a] + self.unit[c]) @ self.unit.T
            for cols in (a, b, c):
                sims.scatter_(1, cols[:, None], -float("inf"))
            correct += int((sims.argmax(1) == d).sum())
        return {"accuracy": correct / len(q) if len(q) else float("nan"),
                "questions": len(q), "skipped": skipped}

    def evaluate(self, analogies: bool = True) -> dict[str, float]:
        """All the scores under summary.json's names: ``wordsim353``, ``simlex999`` (and
        their ``_pairs``), ``analogy_accuracy``, ``analogy_questions``, ``analogy_skipped``."""
        out: dict[str, float] = {}
        for name in ("wordsim353", "simlex999"):
            r = self.evaluate_pairs(name)
            out[name], out[f"{name}_pairs"] = r["spearman"], r["pairs"]
        if analogies:
            r = self.evaluate_analogies()
            out.update({f"analogy_{k}": v for k, v in r.items()})
        return out

    # ---- files ------------------------------------------------------------------------------
    def save_word2vec(self, path: str | Path) -> Path:
        """Write word2vec's text format (gensim's ``KeyedVectors.load_word2vec_format`` reads
        it); reading it back gives the same words and the same float32 numbers."""
        from .data.vectors import write_word2vec

        return write_word2vec(path, self.words, self.vectors)

    @classmethod
    def from_word2vec(cls, path: str | Path, flag: str = "--import") -> Embeddings:
        from .data.vectors import read_word2vec

        words, vectors = read_word2vec(path, flag=flag)
        return cls(words, vectors, path=Path(path))

    def plot(self, words: Sequence[str], path: str | Path) -> Path:
        """A PNG of ``words`` at their first two principal components (PCA of their vectors)."""
        from .train.plots import _pyplot, _save

        if len(words) < 2:
            raise UserError("--plot needs at least two words (comma-separated)")
        xy = pca_2d(self.vectors[[self.row(w) for w in words]]).numpy()
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
        ax.scatter(xy[:, 0], xy[:, 1], s=18, color="tab:blue")
        for (x, y), w in zip(xy, words):
            ax.annotate(w, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=10)
        ax.set_xlabel("principal component 1")
        ax.set_ylabel("principal component 2")
        ax.set_title(f"{len(words)} word vectors, PCA to 2-D")
        path = Path(path)
        _save(fig, path)
        return path


def pair_score_text(rho: float | None, pairs: int | None) -> str:
    """A word-pair score for a printed report: the correlation and its pairs, or, with fewer
    than ``MIN_PAIRS`` pairs, how many there were and that more text is needed.

    Example:
        >>> pair_score_text(0.41234, 120), pair_score_text(float("nan"), 3)
        ('0.412 (120 pairs)', 'not measured (3 pairs covered, needs 30: more text)')
    """
    if pairs is None:
        return "-"
    if pairs < MIN_PAIRS:
        return f"not measured ({pairs} pairs covered, needs {MIN_PAIRS}: more text)"
    score = "-" if rho is None or np.isnan(rho) else f"{rho:.3f}"
    return f"{score} ({pairs} pairs)"


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their mean rank, as scipy's ``spearmanr``).

    Example:
        >>> round(spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 20, 40])), 4)
        0.9487
    """
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / den) if den else float("nan")


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def load_embeddings(run_dir: str | Path, which: str = "best") -> Embeddings:
    """The input vectors and vocabulary of a word2vec run (``rnnkit train word2vec --out``)."""
    from .data.skipgram import Vocab
    from .train.checkpoint import checkpoint_path, load_checkpoint, read_task

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not an rnnkit run directory (no config.json); pass the "
                        "--out directory of rnnkit train word2vec")
    task = read_task(run_dir)
    if task != "word2vec":
        raise UserError(f"{run_dir} is a {task} run, not word vectors; this needs a run of "
                        "rnnkit train word2vec")
    ck = load_checkpoint(checkpoint_path(run_dir, which))
    vocab = Vocab.load(run_dir / "checkpoints" / "vocab.json")
    vectors = ck.model_state.get("input.weight")
    if vectors is None or len(vectors) != len(vocab):
        raise UserError(f"{ck.path} does not hold this run's {len(vocab):,} word vectors; "
                        "restore the run's own checkpoint or train again")
    config = ck.metadata.get("model_config") or {}
    return Embeddings(vocab.words, vectors, config, ck.path)
