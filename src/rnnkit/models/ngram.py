"""The baseline deck 001 starts from: a smoothed character n-gram language model.

Interpolated modified Kneser-Ney (Chen & Goodman 1998). For a context ``h`` (the previous
``k - 1`` characters) and a character ``w``::

    P_k(w | h) = max(c_k(h w) - D_k(c), 0) / c_k(h)  +  gamma_k(h) * P_{k-1}(w | h[1:])
    gamma_k(h) = (D_k1 N1(h .) + D_k2 N2(h .) + D_k3+ N3+(h .)) / c_k(h)

where the top order counts occurrences, lower orders count *continuations* (how many
different characters precede ``h w``: Kneser-Ney's point that "Francisco" is frequent but
follows only "San"), ``c_k(h)`` sums the counts over ``w``, ``N_j(h .)`` counts the ``w``
seen ``j`` times after ``h``, and the discounts ``D`` come from each order's counts of
counts. Order 0 is uniform over the vocabulary: the training characters plus one unknown
symbol, so any text gets a finite score. A context never seen backs off whole to the order
below.

Counts are sorted numpy arrays of n-gram codes (the characters as digits of one integer),
looked up with ``searchsorted``: fitting 5 MB takes a few seconds.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

UNK = "<unk>"
_MAX_CODE = 2**62  # n-gram codes are int64: vocab_size ** order must stay below this


class CharNGram:
    """Smoothed character n-gram model (interpolated modified Kneser-Ney).

    Example:
        >>> lm = CharNGram(order=3).fit("abcabcabcabc" * 20)
        >>> round(lm.bits_per_char("abcabc"), 2) < 0.5
        True
        >>> p = lm.distribution("ab")
        >>> max(p, key=p.get), round(sum(p.values()), 6)
        ('c', 1.0)
    """

    def __init__(self, order: int = 5):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be a positive integer, got {order!r}")
        self.order = order
        self.chars: list[str] = []
        self.stoi: dict[str, int] = {}
        self._tables: list[dict[str, np.ndarray]] = []

    # ---- fitting ------------------------------------------------------------------------
    def fit(self, text: str) -> CharNGram:
        """Count the n-grams of ``text`` (orders 1..order) and set the discounts."""
        if not text:
            raise ValueError("cannot fit an n-gram model to empty text")
        counts = Counter(text)
        max_symbols = int(_MAX_CODE ** (1 / self.order))  # rarer characters become unknown
        self.chars = sorted(sorted(counts, key=lambda c: (-counts[c], c))[: max_symbols - 1])
        self.stoi = {c: i + 1 for i, c in enumerate(self.chars)}  # 0 is the unknown symbol
        self._points = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # sorted
        self.base = len(self.chars) + 1
        ids = self._ids(text)

        grams = ids.copy()  # codes of the grams of length k starting at each position
        uniq = []  # per order k: the distinct k-grams and how often each occurs
        for k in range(1, self.order + 1):
            if k > 1:
                grams = grams[:-1] * self.base + ids[k - 1:]
            uniq.append(np.unique(grams, return_counts=True))
        self._tables = []
        for k in range(1, self.order + 1):
            if k == self.order:
                keys, cnt = uniq[k - 1]
            else:  # continuation counts: distinct characters seen before each k-gram
                longer = uniq[k][0]
                keys, cnt = np.unique(longer % self.base**k, return_counts=True)
            self._tables.append(self._table(keys, cnt))
        return self

    def _ids(self, text: str) -> np.ndarray:
        """Symbol ids of the characters of ``text`` (0 for unknown), via their code points."""
        if not self.stoi:
            raise RuntimeError("fit the model before scoring")
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        i = np.searchsorted(self._points, points).clip(max=len(self._points) - 1)
        return np.where(self._points[i] == points, i + 1, 0).astype(np.int64)

    def _table(self, keys: np.ndarray, cnt: np.ndarray) -> dict[str, np.ndarray]:
        """One order: the discounted count of each gram, and per context its total and gamma."""
        D = _discounts(cnt)
        level = np.minimum(cnt, 3) - 1  # 0, 1, 2 for counts 1, 2, 3+
        ctx, first = np.unique(keys // self.base, return_index=True)  # keys are sorted
        total = np.add.reduceat(cnt, first).astype(np.float64) if len(keys) else np.zeros(0)
        gamma = np.add.reduceat(D[level], first) if len(keys) else np.zeros(0)
        return {"keys": keys, "num": np.maximum(cnt - D[level], 0.0),
                "ctx": ctx, "total": total, "gamma": gamma}

    # ---- probabilities ------------------------------------------------------------------
    def _prob(self, ctx: list[np.ndarray], valid: list[np.ndarray], w: np.ndarray) -> np.ndarray:
        """P(w | context) for a batch of queries; ``ctx[k-1]`` holds the codes of the last
        ``k - 1`` context characters (``valid`` where the context is that long)."""
        p = np.full(len(w), 1.0 / self.base)
        for k, t in enumerate(self._tables, start=1):
            if not len(t["ctx"]):
                continue
            i = np.searchsorted(t["ctx"], ctx[k - 1]).clip(max=len(t["ctx"]) - 1)
            seen = valid[k - 1] & (t["ctx"][i] == ctx[k - 1])
            gram = ctx[k - 1] * self.base + w
            j = np.searchsorted(t["keys"], gram).clip(max=len(t["keys"]) - 1)
            num = np.where(t["keys"][j] == gram, t["num"][j], 0.0)
            p = np.where(seen, (num + t["gamma"][i] * p) / np.where(seen, t["total"][i], 1), p)
        return p

    def _contexts(self, ids: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """For every position of ``ids``: the codes of its 0..order-1 previous characters."""
        m = len(ids)
        ctx, valid = [np.zeros(m, np.int64)], [np.ones(m, bool)]
        for k in range(2, self.order + 1):
            c = ctx[-1].copy()
            if m >= k:
                c[k - 1:] += ids[: m - k + 1] * self.base ** (k - 2)
            ctx.append(c)
            valid.append(np.arange(m) >= k - 1)
        return ctx, valid

    def nats(self, text: str, prefix: str = "") -> float:
        """Total -ln P of ``text``, each character given the ones before it (``prefix`` is
        context only, not scored)."""
        ids = self._ids(prefix + text)
        ctx, valid = self._contexts(ids)
        s = len(prefix)
        p = self._prob([c[s:] for c in ctx], [v[s:] for v in valid], ids[s:])
        return float(-np.log(p).sum())

    def bits_per_char(self, text: str, prefix: str = "") -> float:
        """Bits per character of ``text``: nats / len(text) / ln 2."""
        if not text:
            raise ValueError("cannot score empty text")
        return self.nats(text, prefix) / len(text) / math.log(2)

    def distribution(self, context: str) -> dict[str, float]:
        """P(next char | context) over the vocabulary plus ``"<unk>"`` (all unseen chars)."""
        ids = self._ids(context[-(self.order - 1):] if self.order > 1 else "")
        ctx, valid = self._contexts(np.append(ids, 0))
        w = np.arange(self.base)
        p = self._prob([np.full(self.base, c[-1]) for c in ctx],
                       [np.full(self.base, v[-1]) for v in valid], w)
        return {(self.chars[i - 1] if i else UNK): float(p[i]) for i in w}

    def __repr__(self) -> str:
        return f"CharNGram(order={self.order}, vocab={len(self.chars)} + unknown)"


def _discounts(cnt: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts (D1, D2, D3+) from counts of counts; each kept in
    [0.1, j] (0.1 so that lower orders keep some mass: unseen characters stay finite)."""
    n = [int((cnt == j).sum()) for j in (1, 2, 3, 4)]
    default = np.array([0.5, 1.0, 1.5])
    if n[0] == 0 or n[1] == 0:
        return default
    y = n[0] / (n[0] + 2 * n[1])
    D = np.array([1 - 2 * y * n[1] / n[0],
                  2 - 3 * y * n[2] / n[1],
                  3 - 4 * y * n[3] / n[2] if n[2] else default[2]])
    return np.clip(D, 0.1, [1.0, 2.0, 3.0])
