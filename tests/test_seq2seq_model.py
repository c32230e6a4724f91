"""The encoder-decoder: attention against its equations, masks, teacher forcing against the step
loop, greedy against beam search, for every attention and several cells."""

import math

import pytest
import torch

from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID
from rnnkit.models.attention import Attention
from rnnkit.models.seq2seq import ATTENTIONS, Seq2Seq


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def _batch(lengths, vocab=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    src = torch.randint(4, vocab, (S, len(lengths)), generator=g)
    for b, n in enumerate(lengths):
        src[n:, b] = PAD_ID
    return src, torch.tensor(lengths)


def _model(attention, cell="lstm", **kw):
    torch.manual_seed(0)
    kw = {"hidden": 12, "embed": 6, **kw}
    return Seq2Seq(11, 9, cell=cell, attention=attention, max_length=12, **kw).double().eval()


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_attention_matches_its_equations(kind):
    torch.manual_seed(1)
    att = Attention(kind, 5, 5).double()
    memory, q = torch.randn(2, 4, 5, dtype=torch.double), torch.randn(2, 5, dtype=torch.double)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool()
    context, weights = att(q, att.prepare(memory), memory, mask)
    for b in range(2):
        e = []
        for j in range(4):
            h = memory[b, j]
            if kind == "bahdanau":
                pre = att.query_layer.weight @ q[b] + att.memory_layer.weight @ h \
                    + att.memory_layer.bias
                e.append(float(att.v.weight.detach() @ torch.tanh(pre.detach())))
            elif kind == "dot":
                e.append(float(q[b] @ h))
            else:
                e.append(float(q[b] @ (att.memory_layer.weight.detach() @ h)))
        n = int(mask[b].sum())
        a = torch.softmax(torch.tensor(e[:n], dtype=torch.double), 0)
        assert torch.allclose(weights[b, :n], a)
        assert (weights[b, n:] == 0).all()  # padded positions get no attention at all
        assert torch.allclose(context[b], a @ memory[b, :n])


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru"])
def test_teacher_forcing_equals_the_step_loop(attention, cell):
    """The parallel path (one engine call over the target) and the decoding step agree."""
    m = _model(attention, cell, layers=2, residual=True)
    src, lengths = _batch([5, 3, 4])
    y_in = torch.randint(4, 9, (6, 3))
    y_in[0] = BOS_ID
    logits, weights = m(src, lengths, y_in)
    enc = m.encode(src, lengths)
    states = m.initial_state(enc)
    for t in range(6):
        step_logits, states, w = m.step(enc, y_in[t], states)
        assert torch.allclose(step_logits, logits[t], atol=1e-10)
        if attention != "none":
            assert torch.allclose(w, weights[:, t], atol=1e-10)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_a_padded_batch_decodes_as_each_item_alone(attention, bidirectional):
    m = _model(attention, bidirectional=bidirectional)
    src, lengths = _batch([7, 2, 5, 1, 7], seed=3)
    outs, maps = m.greedy(src, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_maps = m.greedy(src[:n, b:b + 1], lengths[b:b + 1])
        assert alone[0] == outs[b]
        assert torch.allclose(alone_maps[0], maps[b], atol=1e-10)
        if attention != "none":
            assert torch.allclose(maps[b].sum(-1), torch.ones(len(maps[b]), dtype=torch.double))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_one_is_greedy_and_wider_beams_never_score_lower(attention):
    m = _model(attention)
    for seed in range(6):
        src, lengths = _batch([6], seed=seed)
        greedy, _ = m.greedy(src, lengths)
        one, one_score = m.beam_search(src[:, 0], beam=1)
        assert one == greedy[0]
        assert math.isclose(one_score, m.score(src[:, 0], one), rel_tol=1e-9, abs_tol=1e-9)
        for beam in (2, 4):
            best, score = m.beam_search(src[:, 0], beam=beam)
            assert math.isclose(score, m.score(src[:, 0], best), rel_tol=1e-9, abs_tol=1e-9)
            assert score >= one_score - 1e-9


def test_beam_search_finds_the_best_output_where_it_can_enumerate_them():
    """A model trained a little on one pair: beam 8 returns the top-scoring output among all
    outputs of up to 3 tokens (enumerated), when the top one is that short."""
    torch.manual_seed(0)
    m = Seq2Seq(6, 6, hidden=8, embed=4, attention="general", max_length=4).double()
    src = torch.tensor([4, 5, 4])
    opt = torch.optim.Adam(m.parameters(), 0.05)
    y = torch.tensor([[BOS_ID, 4, 5]]).T
    for _ in range(30):
        logits, _ = m(src[:, None], torch.tensor([3]), y)
        loss = torch.nn.functional.cross_entropy(logits[:, 0], torch.tensor([4, 5, EOS_ID]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    outputs = [[]] + [[a] for a in (4, 5)] + [[a, b] for a in (4, 5) for b in (4, 5)]
    scores = {tuple(o): m.score(src, o) for o in outputs}
    best, score = m.beam_search(src, beam=8)
    assert tuple(best) == max(scores, key=scores.get)


def test_config_rebuilds_the_model_and_bad_settings_are_user_errors():
    m = _model("bahdanau", layers=2)
    assert Seq2Seq(**m.config).config == m.config
    from rnnkit.errors import UserError

    for kw in ({"attention": "luong"}, {"cell": "lsmt"}, {"hidden": 0}, {"dropout": 1.0}):
        with pytest.raises(UserError):
            Seq2Seq(5, 5, **kw)


def test_training_learns_to_reverse_short_sequences():
    """A real (small) task: reverse 2-4 tokens; the model gets every held-out one right."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = Seq2Seq(8, 8, hidden=32, embed=8, attention="bahdanau", max_length=6)
    opt = torch.optim.Adam(m.parameters(), 0.01)

    def batch(n):
        lengths = torch.randint(2, 5, (n,), generator=g)
        src = torch.randint(4, 8, (4, n), generator=g)
        src[torch.arange(4)[:, None] >= lengths] = PAD_ID
        tgt = torch.full((5, n), PAD_ID)
        for b, k in enumerate(lengths.tolist()):
            tgt[:k, b] = src[:k, b].flip(0)
            tgt[k, b] = EOS_ID
        y_in = torch.cat([torch.full((1, n), BOS_ID), tgt[:-1]])
        return src, lengths, y_in, tgt

    for _ in range(250):
        src, lengths, y_in, tgt = batch(32)
        logits, _ = m(src, lengths, y_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 8), tgt.reshape(-1),
                                                 ignore_index=PAD_ID)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    src, lengths, _, tgt = batch(50)
    outs, _ = m.greedy(src, lengths)
    right = sum(o == src[:n, b].flip(0).tolist() for b, (o, n) in
                enumerate(zip(outs, lengths.tolist())))
    assert right >= 48
