"""Sampling from a language model: the distributions drawn from, the carried state, seeds."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.generate import filter_probs, generate, start_token_id

LOGITS = [2.0, 1.4, 1.0, 0.3, 0.0, -0.5, -2.0]


class FixedLogits(nn.Module):
    """The same logits at every step; the state counts the steps run; records each call."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))
        self.calls = []  # (T, training, grad enabled) per forward

    def forward(self, x, state=None):
        T, B = x.shape
        self.calls.append((T, self.training, torch.is_grad_enabled()))
        return self.logits.expand(T, B, -1), (0 if state is None else state) + T


class CountingModel(nn.Module):
    """Greedy output = (steps seen so far, through the carried state) mod V."""

    V = 50

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.steps_run = 0

    def forward(self, x, state=None):
        T, B = x.shape
        self.steps_run += T
        seen = (0 if state is None else state) + torch.arange(1, T + 1)  # steps incl. this one
        logits = nn.functional.one_hot(seen % self.V, self.V).float().unsqueeze(1)
        return logits.expand(T, B, self.V) + self.w, int(seen[-1])


class EchoModel(nn.Module):
    """Greedy output = input token + 1 mod V: proves the sampled token is what is fed back."""

    V = 10

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, state=None):
        return nn.functional.one_hot((x + 1) % self.V, self.V).float() + self.w, state


def expected_distribution(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Written independently of filter_probs: numpy, sort once, cut the sorted list."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    n_keep = len(p) if top_k == 0 else top_k
    kept = p[order][:n_keep] / p[order][:n_keep].sum()
    if top_p < 1:
        n_keep = int(np.searchsorted(np.cumsum(kept), top_p) + 1)  # first prefix reaching p
        kept = kept[:n_keep] / kept[:n_keep].sum()
    out = np.zeros(len(p))
    out[order[:len(kept)]] = kept
    return out


@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, 0, 1.0), (0.6, 0, 1.0), (1.7, 0, 1.0), (1.0, 3, 1.0), (1.0, 0, 0.8),
    (0.8, 4, 0.9),
])
def test_draws_follow_the_filtered_distribution(temperature, top_k, top_p):
    expected = expected_distribution(LOGITS, temperature, top_k, top_p)
    assert np.allclose(filter_probs(torch.tensor(LOGITS), temperature, top_k, top_p).numpy(),
                       expected, atol=1e-6)
    n = 6000
    g = torch.Generator().manual_seed(1234)
    draws = list(generate(FixedLogits(LOGITS), [0], n, temperature, top_k, top_p, g))
    counts = np.bincount(draws, minlength=len(LOGITS))
    assert counts[expected == 0].sum() == 0  # nothing outside the kept set is ever drawn
    kept = expected > 0
    assert chisquare(counts[kept], n * expected[kept]).pvalue > 1e-3


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.tensor([0.5, 0.25, 0.15, 0.1]).log()
    assert (filter_probs(logits, top_p=0.7) > 0).tolist() == [True, True, False, False]
    assert (filter_probs(logits, top_p=0.45) > 0).tolist() == [True, False, False, False]
    assert (filter_probs(logits, top_p=0.85) > 0).tolist() == [True, True, True, False]
    assert (filter_probs(logits, top_p=1.0) > 0).all()


def test_top_k_breaks_ties_to_exactly_k():
    p = filter_probs(torch.tensor([1.0, 1.0, 1.0, 0.0]), top_k=2)
    assert int((p > 0).sum()) == 2 and torch.isclose(p.sum(), torch.tensor(1.0))


def test_greedy_is_the_argmax_and_deterministic():
    m = FixedLogits(LOGITS)
    assert list(generate(m, [1], 20, temperature=0)) == [0] * 20
    a = list(generate(EchoModel(), [3], 12, temperature=0))
    assert a == [(3 + i + 1) % 10 for i in range(12)]  # each sampled token is fed back


def test_same_seed_same_tokens():
    m = FixedLogits(LOGITS)

    def draw(seed):
        return list(generate(m, [2, 1], 200, generator=torch.Generator().manual_seed(seed)))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_state_is_carried_and_the_prefix_is_never_rerun():
    m = CountingModel()
    out = list(generate(m, [5, 6, 7], 30, temperature=0))
    assert out == [(3 + i) % CountingModel.V for i in range(30)]  # the count went on
    assert m.steps_run == 3 + 29  # the prime once, then one step per token but the last


def test_prime_is_one_forward_then_single_steps_in_eval_mode_without_grad():
    m = FixedLogits(LOGITS)
    m.train()
    gen = generate(m, [1, 2, 3, 4], 5)
    next(gen)
    assert torch.is_grad_enabled()  # a paused generator leaves grad mode alone
    assert m.training  # ... and the model's mode
    list(gen)
    assert [c[0] for c in m.calls] == [4, 1, 1, 1, 1]
    assert not any(c[1] or c[2] for c in m.calls)  # every forward in eval mode, no grad
    assert m.training


def test_empty_prime_starts_from_the_start_token():
    seen = []

    class Spy(FixedLogits):
        def forward(self, x, state=None):
            seen.append((x.tolist(), state))
            return super().forward(x, state)

    list(generate(Spy(LOGITS), [], 2, start_id=4))
    assert seen[0] == ([[4]], None)


def test_start_token_is_the_newline_else_zero():
    tok = build_tokenizer("char", "ab\ncd")
    assert tok.decode([start_token_id(tok)]) == "\n"
    assert start_token_id(build_tokenizer("char", "hello")) == 0
    bpe = build_tokenizer("bpe", "one two\nthree four\n" * 20, vocab_size=260)
    assert bpe.decode([start_token_id(bpe)]) == "\n"


@pytest.mark.parametrize("kw, word", [
    ({"temperature": -1.0}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"top_k": -2}, "top-k"), ({"top_p": 0.0}, "top-p"), ({"top_p": 1.5}, "top-p"),
    ({"length": -1}, "length"),
])
def test_bad_settings_are_user_errors(kw, word):
    args = {"length": 3, **kw}
    with pytest.raises(UserError, match=word):
        list(generate(FixedLogits(LOGITS), [0], **args))


def test_steps_run_on_one_thread_and_the_count_is_restored():
    seen = []

    class Spy(FixedLogits):
        def forward(self, x, state=None):
            seen.append(torch.get_num_threads())
            return super().forward(x, state)

    before = torch.get_num_threads()
    gen = generate(Spy(LOGITS), [1, 2], 3)
    next(gen)
    assert torch.get_num_threads() == before  # a paused generator leaves it alone
    list(gen)
    assert seen == [1, 1, 1] and torch.get_num_threads() == before
