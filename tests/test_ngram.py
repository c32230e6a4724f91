"""The smoothed character n-gram baseline against a plain-dict Kneser-Ney and known limits."""

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.corpora import load_corpus, split_corpus
from rnnkit.models.ngram import UNK, CharNGram, _discounts


def reference_kn(text: str, order: int):
    """Interpolated modified Kneser-Ney written the slow, obvious way (dicts of strings)."""
    V = len(set(text)) + 1
    counts = []  # counts[k-1][gram]: occurrences (top order) or continuations (lower)
    for k in range(1, order + 1):
        if k == order:
            counts.append(Counter(text[i:i + k] for i in range(len(text) - k + 1)))
        else:
            longer = {text[i:i + k + 1] for i in range(len(text) - k)}
            counts.append(Counter(g[1:] for g in longer))
    D = [_discounts(np.array(list(c.values()))) for c in counts]
    by_ctx = [defaultdict(dict) for _ in counts]
    for k, c in enumerate(counts):
        for g, n in c.items():
            by_ctx[k][g[:-1]][g[-1]] = n

    def prob(history: str, w: str) -> float:
        p = 1 / V
        for k in range(1, min(order, len(history) + 1) + 1):
            h = history[len(history) - (k - 1):] if k > 1 else ""
            follow = by_ctx[k - 1].get(h)
            if not follow:
                continue
            d = D[k - 1]
            total = sum(follow.values())
            gamma = sum(d[min(n, 3) - 1] for n in follow.values())
            n = follow.get(w, 0)
            p = (max(n - d[min(n, 3) - 1], 0) if n else 0) / total + gamma / total * p
        return p

    return prob


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_matches_the_plain_dict_reference(order):
    rng = np.random.default_rng(order)
    train = "".join(rng.choice(list("abcde "), 3000, p=[.3, .2, .2, .1, .1, .1]))
    test = "".join(rng.choice(list("abcdefz "), 300))  # f, z unseen
    lm = CharNGram(order).fit(train)
    prob = reference_kn(train, order)
    expected = -sum(math.log(prob(test[:i], test[i])) for i in range(len(test)))
    assert lm.nats(test) == pytest.approx(expected, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcxy \n", min_size=1, max_size=300), st.integers(1, 6),
       st.lists(st.text(alphabet="abcxyq", max_size=8), min_size=1, max_size=4))
def test_next_char_probabilities_sum_to_one(train, order, contexts):
    lm = CharNGram(order).fit(train)
    for context in contexts:
        dist = lm.distribution(context)
        assert set(dist) == set(train) | {UNK}
        assert all(p > 0 for p in dist.values())
        assert sum(dist.values()) == pytest.approx(1.0, abs=1e-9)
        # the same numbers as scoring the character after the context
        c = max(dist, key=dist.get)
        if c != UNK:
            assert math.exp(-lm.nats(c, prefix=context)) == pytest.approx(dist[c], rel=1e-9)


def test_repetitive_text_costs_almost_nothing():
    lm = CharNGram(5).fit("hello" * 200)
    assert lm.bits_per_char("hello" * 40) < 0.05


@pytest.mark.parametrize("k", [2, 5, 8])
def test_uniform_random_text_costs_log2_k(k):
    rng = np.random.default_rng(k)
    letters = list("abcdefgh"[:k])
    lm = CharNGram(5).fit("".join(rng.choice(letters, 100_000)))
    bpc = lm.bits_per_char("".join(rng.choice(letters, 20_000)))
    assert math.log2(k) - 0.02 < bpc < 1.04 * math.log2(k)  # a little overfit, 5-grams are sparse


def test_bpc_falls_with_order_on_python_docs():
    train, val, _ = split_corpus(load_corpus("python-docs"))
    bpc = [CharNGram(n).fit(train).bits_per_char(val) for n in range(1, 6)]
    assert all(a > b for a, b in zip(bpc, bpc[1:])), bpc
    assert 4.0 < bpc[0] < 5.0 and bpc[-1] < 2.0


def test_unseen_characters_score_finite_and_prefix_splits_the_sum():
    lm = CharNGram(3).fit("the cat sat on the mat. " * 20)
    assert math.isfinite(lm.bits_per_char("the 🐕 sat ÜBER the mat"))
    a, b = "the cat ", "sat on the dog"
    assert lm.nats(a + b) == pytest.approx(lm.nats(a) + lm.nats(b, prefix=a), rel=1e-12)


def test_misuse_is_an_error():
    with pytest.raises(ValueError):
        CharNGram(0)
    with pytest.raises(ValueError):
        CharNGram(3).fit("")
    with pytest.raises(RuntimeError):
        CharNGram(3).nats("abc")
