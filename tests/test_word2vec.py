"""word2vec: deck 001's training pairs, the compiled loop against the vectorised PyTorch step
and autograd, the unigram table and subsampling against gensim, the evaluations against scipy
and gensim, word2vec text export and import (exact; gensim reads it), `rnnkit train word2vec`
and `rnnkit embed`, bad input, and pretrained vectors in the language model."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.skipgram import (
    Vocab,
    draw_negatives,
    encode,
    keep_probabilities,
    sentences,
    training_pairs,
    unigram_table,
    window_pairs,
)
from rnnkit.data.vectors import read_word2vec, write_word2vec
from rnnkit.embeddings import Embeddings, spearman
from rnnkit.engine.word2vec import ops
from rnnkit.errors import UserError
from rnnkit.models.word2vec import Word2Vec, sgns_step, softmax_step

DECK = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture(scope="module")
def compiled():
    o = ops()
    if o is None:
        pytest.skip("no C++ compiler: the compiled loop cannot be built here")
    return o


def _text(path: Path, n_sentences: int = 400, seed: int = 0) -> Path:
    """A small corpus with structure: animals do animal things, tools do tool things."""
    rng = random.Random(seed)
    groups = [("cat dog horse cow sheep".split(), "runs eats sleeps jumps".split()),
              ("hammer saw drill wrench knife".split(), "cuts drills fixes breaks".split())]
    lines = []
    for _ in range(n_sentences):  # a sentence speaks of one group only
        nouns, verbs = rng.choice(groups)
        lines.append(" ".join(rng.choice(nouns if i % 2 == 0 else verbs) for i in range(6)))
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- deck 001's training pairs --------------------------------------------------------------

def test_training_pairs_are_deck_001s_table():
    pairs = training_pairs(DECK, window=2)
    # the deck's table, row by row
    assert pairs[:2] == [("the", "quick"), ("the", "brown")]
    assert pairs[2:5] == [("quick", "the"), ("quick", "brown"), ("quick", "fox")]
    assert pairs[5:9] == [("brown", "the"), ("brown", "quick"), ("brown", "fox"),
                          ("brown", "jumps")]
    assert pairs[9:13] == [("fox", "quick"), ("fox", "brown"), ("fox", "jumps"), ("fox", "over")]
    # and the rest of the sentence the same way: 2 + 3 + 4 * 5 + 3 + 2 pairs
    assert pairs[13:17] == [("jumps", "brown"), ("jumps", "fox"), ("jumps", "over"),
                            ("jumps", "the")]
    assert pairs[-2:] == [("dog", "the"), ("dog", "lazy")]
    assert len(pairs) == 30


def test_compiled_loop_trains_the_decks_pairs_in_deterministic_mode(compiled):
    corpus = sentences(DECK)
    vocab = Vocab.build(corpus, min_count=1)
    enc = encode(corpus, vocab)
    m = Word2Vec(len(vocab), 8)
    for cbow, updates in ((False, 30), (True, 9)):  # skip-gram: a pair each; cbow: a window
        out = compiled.train_chunk(m.input.weight, m.output.weight, enc.tokens, enc.bounds,
                                   keep_probabilities(vocab.counts, 0.0),
                                   unigram_table(vocab.counts), 2, 3, False, cbow, 0.025,
                                   0.025, 0, 1).tolist()
        assert out[2] == updates and out[3] == 9


def test_window_pairs_match_a_plain_double_loop():
    rng = random.Random(1)
    for _ in range(30):
        n, window = rng.randint(1, 40), rng.randint(1, 4)
        sid = sorted(rng.randrange(5) for _ in range(n))
        reduced = [rng.randrange(window) for _ in range(n)]
        want = [(i, j) for i in range(n) for j in range(n)
                if i != j and sid[i] == sid[j] and abs(i - j) <= window - reduced[i]]
        c, x = window_pairs(torch.tensor(sid), window, torch.tensor(reduced))
        assert list(zip(c.tolist(), x.tolist())) == want


# ---- the corpus's sentences ---------------------------------------------------------------------

def _loaded(path: Path):
    """What ``rnnkit train word2vec --text PATH --min-count 1`` trains on: (train, info)."""
    from rnnkit.train.word2vec import DEFAULTS, _data

    train, _, _, info = _data({**DEFAULTS, "text": str(path), "min_count": 1})
    return train, info


def test_a_file_of_one_document_per_line_is_read_line_by_line(tmp_path):
    """2,000 short reviews, one a line and no blank line (or one stray blank line): each line
    is a sentence, so no window pairs words of two reviews."""
    rng = random.Random(0)
    vocab = "the film was good bad plot acting long short fun dull great".split()
    lines = [" ".join(rng.choices(vocab, k=rng.randint(3, 15))) for _ in range(2000)]
    lengths = torch.tensor([len(line.split()) for line in lines])
    line_of = torch.repeat_interleave(torch.arange(len(lines)), lengths)
    for name, text in (("plain", "\n".join(lines) + "\n"),
                       ("stray", "\n".join(lines[:700]) + "\n\n" + "\n".join(lines[700:]))):
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        assert sentences(text) == [line.split() for line in lines]
        train, info = _loaded(path)
        assert info["sentences"] == 2000 and info["sentence_is"] == "line"
        assert train.bounds.tolist() == [0, *torch.cumsum(lengths, 0).tolist()]
        centres, contexts = window_pairs(train.sentence_ids(), 5)
        assert len(centres) > 0 and torch.equal(line_of[centres], line_of[contexts])


def test_prose_paragraphs_stay_sentences_across_their_line_breaks(tmp_path):
    """Hard-wrapped paragraphs between blank lines: a paragraph is one sentence (its line
    breaks crossed, the blank lines not), and so is a short file without blank lines."""
    from rnnkit.data.skipgram import LINES_PER_PARAGRAPH

    rng = random.Random(1)
    vocab = "a the cat sat on mat dog ran far away and then".split()
    paragraphs = [[" ".join(rng.choices(vocab, k=10)) for _ in range(rng.randint(1, 8))]
                  for _ in range(50)]
    text = "\n\n".join("\n".join(p) for p in paragraphs) + "\n"
    assert sentences(text) == [" ".join(p).split() for p in paragraphs]
    (tmp_path / "prose.txt").write_text(text)
    train, info = _loaded(tmp_path / "prose.txt")
    assert info["sentences"] == 50 and info["sentence_is"] == "paragraph"
    assert len(sentences("a b\n" * LINES_PER_PARAGRAPH)) == 1


# ---- the updates ------------------------------------------------------------------------------

def test_sgns_step_is_sgd_on_the_autograd_loss():
    torch.manual_seed(0)
    V, D, B, K, alpha = 12, 6, 20, 4, 0.1
    model = Word2Vec(V, D)
    model.output.weight.data.normal_(0, 0.3)
    model.input.weight.data.normal_(0, 0.3)
    inputs, targets = torch.randint(0, V, (B,)), torch.randint(0, V, (B,))
    negatives = torch.randint(0, V, (B, K))
    negatives[0, 1] = targets[0]  # a negative that is the target is left out
    h = model.input.weight[inputs].clone().requires_grad_(True)
    out = model.output.weight.clone().requires_grad_(True)
    from rnnkit.models.word2vec import _sgns_terms

    loss = _sgns_terms(h, out, targets, negatives)[0]
    loss.backward()
    table = model.output.weight.clone()
    value, dh = sgns_step(None, table, model.input.weight[inputs], targets, negatives, alpha)
    assert value == pytest.approx(float(loss.detach()), rel=1e-6)
    torch.testing.assert_close(dh, -alpha * h.grad)
    torch.testing.assert_close(table - model.output.weight, -alpha * out.grad)


def test_softmax_step_is_sgd_on_the_cross_entropy():
    torch.manual_seed(1)
    V, D, B, alpha = 7, 5, 9, 0.2
    model = Word2Vec(V, D, loss="softmax")
    model.output.weight.data.normal_(0, 0.3)
    inputs, targets = torch.randint(0, V, (B,)), torch.randint(0, V, (B,))
    w_in = model.input.weight.clone().requires_grad_(True)
    w_out = model.output.weight.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(w_in[inputs] @ w_out.T, targets, reduction="sum")
    loss.backward()
    table = model.output.weight.clone()
    value, dh = softmax_step(table, model.input.weight[inputs], targets, alpha)
    assert value == pytest.approx(float(loss.detach()), rel=1e-6)
    step_in = torch.zeros_like(table).index_add_(0, inputs, dh)
    torch.testing.assert_close(step_in, -alpha * w_in.grad)
    torch.testing.assert_close(table - model.output.weight, -alpha * w_out.grad)


def test_compiled_updates_equal_the_torch_step_one_pair_at_a_time(compiled):
    torch.manual_seed(2)
    V, D, N, K, alpha = 15, 10, 60, 5, 0.05
    syn0 = torch.randn(V, D) * 0.3
    syn1 = torch.randn(V, D) * 0.3
    inputs, targets = torch.randint(0, V, (N,)), torch.randint(0, V, (N,))
    # distinct negatives per pair (a repeated one is updated twice in a row by the C loop)
    negatives = torch.stack([torch.randperm(V)[:K] for _ in range(N)])
    a0, a1 = syn0.clone(), syn1.clone()
    loss_c = compiled.train_pairs(a0, a1, inputs, targets, negatives, alpha)
    b0, b1, loss_t = syn0.clone(), syn1.clone(), 0.0
    for i in range(N):
        part, dh = sgns_step(None, b1, b0[inputs[i:i + 1]], targets[i:i + 1],
                             negatives[i:i + 1], alpha)
        b0.index_add_(0, inputs[i:i + 1], dh)
        loss_t += part
    torch.testing.assert_close(a0, b0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a1, b1, rtol=1e-5, atol=1e-6)
    assert loss_c == pytest.approx(loss_t, rel=1e-5)


def test_compiled_loop_is_reproducible_on_one_thread(compiled):
    corpus = sentences(DECK * 30)
    vocab = Vocab.build(corpus, 1)
    enc = encode(corpus, vocab)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        m = Word2Vec(len(vocab), 8)
        compiled.train_chunk(m.input.weight, m.output.weight, enc.tokens, enc.bounds,
                             keep_probabilities(vocab.counts, 1e-2), unigram_table(vocab.counts),
                             3, 4, True, False, 0.05, 0.01, 7, 1)
        results.append(m.input.weight.clone())
    assert torch.equal(*results) and not torch.equal(results[0], Word2Vec(len(vocab), 8)
                                                     .input.weight)


# ---- the unigram table and subsampling ------------------------------------------------------

def test_negatives_are_drawn_with_count_to_the_three_quarters(compiled):
    counts = np.array([5000, 1200, 300, 300, 40, 7, 1])
    want = counts ** 0.75 / (counts ** 0.75).sum()
    table = unigram_table(counts)
    n = 200_000
    for drawn in (compiled.draw(table, n, 3), draw_negatives(table, (n,),
                                                            torch.Generator().manual_seed(3))):
        share = np.bincount(drawn.numpy(), minlength=len(counts)) / n
        assert np.all(np.abs(share - want) <= 4 * np.sqrt(want / n) + 1e-4), (share, want)


def test_subsampling_keeps_words_as_gensim_does():
    from gensim.models import Word2Vec as GensimWord2Vec

    corpus = sentences(_text_string(3000))
    g = GensimWord2Vec(min_count=1, sample=1e-2, vector_size=4)
    g.build_vocab(corpus)
    vocab = Vocab.build(corpus, 1)
    keep = keep_probabilities(vocab.counts, 1e-2)
    theirs = np.array([g.wv.get_vecattr(w, "sample_int") / 2 ** 32 for w in vocab.words])
    np.testing.assert_allclose(keep.numpy(), theirs, rtol=1e-6)
    assert set(vocab.words) == set(g.wv.index_to_key)
    assert keep.min() < 0.5 and keep.max() == 1.0


def _text_string(n: int) -> str:
    rng = random.Random(0)
    words = ["the"] * 30 + ["a"] * 10 + [f"w{i}" for i in range(60)]
    return "\n\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(n // 12))


def test_vocabulary_keeps_frequent_words_most_frequent_first():
    v = Vocab.build([["b", "a", "b", "c"], ["a", "b", "d"]], min_count=2)
    assert v.words == ["b", "a"] and v.counts.tolist() == [3, 2]
    with pytest.raises(UserError, match="leaves the vocabulary empty; lower --min-count"):
        Vocab.build([["a", "b"]], min_count=2)


# ---- evaluation -------------------------------------------------------------------------------

def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(3, 60)
        x, y = rng.integers(0, 8, n).astype(float), rng.normal(size=n).round(1)
        if len(set(x)) > 1 and len(set(y)) > 1:
            assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


@pytest.fixture(scope="module")
def structured():
    """Vectors for every evaluation word, random plus the analogies' offsets for a share of
    the questions (so accuracy is neither 0 nor 1), and a few words left out (skipped)."""
    from rnnkit.data.wordsets import analogy_questions, word_pairs

    rng = np.random.default_rng(0)
    words = sorted({w.lower() for _, *q in analogy_questions() for w in q}
                   | {w.lower() for name in ("wordsim353", "simlex999")
                      for a, b, _ in word_pairs(name) for w in (a, b)})
    words = [w for w in words if w not in ("tiger", "boy", "athens")]
    vec = {w: rng.normal(size=30) for w in words}
    for _, a, b, c, d in analogy_questions()[::7]:
        a, b, c, d = (w.lower() for w in (a, b, c, d))
        if all(w in vec for w in (a, b, c, d)):
            vec[d] = vec[b] - vec[a] + vec[c] + rng.normal(size=30) * 0.1
    return Embeddings(words, torch.tensor(np.stack([vec[w] for w in words]),
                                          dtype=torch.float32))


def test_word_pair_scores_match_gensim(structured):
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    kv = KeyedVectors(structured.vectors.shape[1])
    kv.add_vectors(structured.words, structured.vectors.numpy())
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        ours = structured.evaluate_pairs(name)
        (_, _), (rho, _), oov = kv.evaluate_word_pairs(datapath(file))
        assert ours["spearman"] == pytest.approx(rho, abs=1e-6)
        assert ours["skipped"] > 0
        assert ours["skipped"] / (ours["skipped"] + ours["pairs"]) == pytest.approx(oov / 100)


def test_word_pair_score_on_too_few_pairs_is_not_measured():
    """The vectors of the words of WordSim-353's first pairs, one pair short of ``MIN_PAIRS``
    known pairs and then enough: NaN, then a correlation."""
    from rnnkit.data.wordsets import word_pairs
    from rnnkit.embeddings import MIN_PAIRS

    pairs = word_pairs("wordsim353")

    def scores(k: int) -> dict:  # the words of the first k pairs, random vectors
        words = sorted({w.lower() for a, b, _ in pairs[:k] for w in (a, b)})
        g = torch.Generator().manual_seed(k)
        return Embeddings(words, torch.randn(len(words), 8, generator=g)).evaluate_pairs(
            "wordsim353")

    k = next(k for k in range(1, len(pairs)) if scores(k)["pairs"] >= MIN_PAIRS)
    below, enough = scores(k - 1), scores(k)
    assert 3 <= below["pairs"] < MIN_PAIRS <= enough["pairs"]
    assert math.isnan(below["spearman"]) and math.isfinite(enough["spearman"])


def test_analogy_accuracy_matches_gensim(structured):
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    kv = KeyedVectors(structured.vectors.shape[1])
    kv.add_vectors(structured.words, structured.vectors.numpy())
    score, sections = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    total = next(s for s in sections if s["section"] == "Total accuracy")
    ours = structured.evaluate_analogies()
    assert 0.05 < ours["accuracy"] < 0.95
    assert ours["accuracy"] == pytest.approx(score, abs=1e-9)
    assert ours["questions"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["skipped"] == 19544 - ours["questions"] > 0


# ---- word2vec text format ---------------------------------------------------------------------

def test_export_import_round_trip_is_exact_and_gensim_reads_it(tmp_path):
    from gensim.models import KeyedVectors

    torch.manual_seed(0)
    words = ["king", "queen", "Straße", "naïve", "x" * 40, "3.14", "don't"]
    vectors = torch.randn(len(words), 17) * torch.logspace(-6, 4, 17)
    vectors[0, 0] = 0.0
    vectors[1, 1] = -1e-38
    path = write_word2vec(tmp_path / "v.txt", words, vectors)
    back_words, back = read_word2vec(path)
    assert back_words == words and torch.equal(back, vectors)
    again = write_word2vec(tmp_path / "v2.txt", back_words, back)
    assert again.read_bytes() == path.read_bytes()
    kv = KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert kv.index_to_key == words
    np.testing.assert_array_equal(kv.vectors, vectors.numpy())


def test_writer_refuses_words_with_spaces(tmp_path):
    with pytest.raises(UserError, match="may not be empty or hold one"):
        write_word2vec(tmp_path / "v.txt", ["new york"], torch.zeros(1, 2))


# ---- training runs ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small compiled run (skip-gram) shared by the tests that use a run."""
    tmp = tmp_path_factory.mktemp("w2v")
    text = _text(tmp / "corpus.txt")
    out = tmp / "run"
    torch.set_num_threads(1)
    code = main(["train", "word2vec", "--text", str(text), "--min-count", "1", "--embed", "16",
                 "--window", "3", "--epochs", "30", "--chunk-words", "1000", "--workers", "1",
                 "--loss", "negative", "--sample", "0", "--no-progress", "--out", str(out),
                 "--json"])
    assert code == 0
    return out, text


def test_run_directory_and_what_the_vectors_learnt(trained, capsys):
    out, _ = trained
    for name in ("config.json", "metrics.jsonl", "summary.json", "loss.png",
                 "checkpoints/init.safetensors", "checkpoints/last.safetensors",
                 "checkpoints/best.safetensors", "checkpoints/vocab.json"):
        assert (out / name).is_file(), name
    s = json.loads((out / "summary.json").read_text())
    assert s["task"] == "word2vec" and s["status"] == "completed" and s["engine"] == "compiled"
    assert s["tokens_per_second"] > 0 and s["epochs"] == pytest.approx(30)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["val_loss"] for r in rows if "val_loss" in r]
    untrained = (1 + 5) * math.log(2)  # zero output vectors: s(0) = 1/2 for all 6 words
    assert losses[-1] < 0.6 * untrained and losses[-1] <= losses[0]
    emb = rnnkit.load(out)
    assert isinstance(emb, Embeddings)
    animals, tools = "cat dog horse cow sheep".split(), "hammer saw drill wrench knife".split()
    same = np.mean([emb.similarity(a, b) for a in animals for b in animals if a != b])
    across = np.mean([emb.similarity(a, b) for a in animals for b in tools])
    assert same > across + 0.3
    nearest = [w for w, _ in emb.neighbours("cat", n=4)]
    assert set(nearest) <= set(animals)


def test_embed_command_neighbours_analogy_export_plot(trained, tmp_path, capsys):
    from gensim.models import KeyedVectors

    out, _ = trained
    assert main(["embed", str(out), "--neighbours", "hammer", "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("\t" in line for line in lines)
    assert "hammer" not in [line.split("\t")[0] for line in lines]
    sims = [float(line.split("\t")[1]) for line in lines]
    assert sims == sorted(sims, reverse=True)
    assert main(["embed", str(out), "--analogy", "cat", "runs", "cuts", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {"cat", "runs", "cuts"}.isdisjoint(r["word"] for r in got["analogy"])
    exported = tmp_path / "v.txt"
    assert main(["embed", str(out), "--export", str(exported)]) == 0
    emb = rnnkit.load(out)
    kv = KeyedVectors.load_word2vec_format(str(exported))
    np.testing.assert_array_equal(kv.vectors, emb.vectors.numpy())
    assert main(["embed", "--import", str(exported), "--neighbours", "hammer", "--top", "3"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines
    png = tmp_path / "words.png"
    assert main(["embed", str(out), "--plot", "cat,dog,hammer,saw", "--plot-file",
                 str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_oov_words_are_clear_errors(trained, capsys):
    out, _ = trained
    assert main(["embed", str(out), "--analogy", "king", "man", "woman"]) == 2
    err = capsys.readouterr().err
    assert "'king' is not in the vocabulary" in err and "Traceback" not in err
    assert main(["embed", str(out), "--neighbours", "zebra"]) == 2
    assert "'zebra' is not in the vocabulary" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["compiled", "torch"])
def test_a_killed_then_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch,
                                                                       engine):
    """Killed after step 5 (one step after a checkpoint), resumed, stopped by SIGTERM after
    step 9, resumed to the end: the vectors, metrics lines and summary of one run (one thread:
    the compiled loop's Hogwild threads would race)."""
    import signal

    from rnnkit.train import trainer as trainer_mod
    from rnnkit.train.checkpoint import load_checkpoint
    from rnnkit.train.word2vec import run_word2vec

    if engine == "compiled" and ops() is None:
        pytest.skip("no C++ compiler")
    volatile = ("elapsed", "tokens_per_second", "train_seconds", "out", "prepare_seconds")

    class Killed(Exception):
        pass

    def outcome(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        kept = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in lines]
        summary = json.loads((out / "summary.json").read_text())
        return (load_checkpoint(out / "checkpoints" / "last.safetensors").model_state, kept,
                {k: v for k, v in summary.items() if k not in volatile})

    settings = {"text": str(_text(tmp_path / "c.txt", 150)), "min_count": 1, "embed": 8,
                "chunk_words": 200, "workers": 1, "engine": engine, "loss": "negative",
                "steps": 12, "checkpoint_every": 4, "eval_every": 6, "log_every": 2,
                "progress": False}
    run_word2vec({**settings, "out": str(tmp_path / "ref")})
    original = trainer_mod.Trainer._after_step
    stops = {5: "kill", 9: "term"}

    def interrupting(self, bar):
        original(self, bar)
        how = stops.pop(self.p.step, None)
        if how == "kill":
            raise Killed
        if how == "term":
            self.stop_signal = signal.SIGTERM

    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", interrupting)
    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        run_word2vec({**settings, "out": str(out)})
    assert run_word2vec({"resume": str(out)})["status"] == "interrupted"
    monkeypatch.undo()
    assert main(["train", "word2vec", "--resume", str(out), "--no-progress"]) == 0
    (want, *want_logs), (got, *got_logs) = outcome(tmp_path / "ref"), outcome(out)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert want_logs == got_logs


@pytest.mark.parametrize("extra, engine", [(["--engine", "torch"], "torch"),
                                           (["--architecture", "cbow"], "compiled"),
                                           (["--architecture", "cbow", "--engine", "torch"],
                                            "torch"),
                                           (["--loss", "softmax"], "torch")])
def test_other_engines_and_architectures_learn(tmp_path, extra, engine):
    if engine == "compiled" and ops() is None:
        pytest.skip("no C++ compiler")
    text = _text(tmp_path / "c.txt", 300)
    from rnnkit.train.word2vec import run_word2vec

    given = {k.lstrip("-").replace("-", "_"): v for k, v in zip(extra[::2], extra[1::2])}
    s = run_word2vec({"text": str(text), "min_count": 1, "embed": 16, "window": 3,
                      "epochs": 20, "chunk_words": 1000, "workers": 1, "batch_size": 64,
                      "sample": 0.0, "loss": "negative", "progress": False,
                      "out": str(tmp_path / "run"), **given})
    assert s["engine"] == engine
    emb = rnnkit.load(tmp_path / "run")
    animals, tools = "cat dog horse cow sheep".split(), "hammer saw drill wrench knife".split()
    same = np.mean([emb.similarity(a, b) for a in animals for b in animals if a != b])
    across = np.mean([emb.similarity(a, b) for a in animals for b in tools])
    assert same > across + 0.2, (same, across)


def test_torch_engine_trains_in_float32_under_the_trainers_autocast(tmp_path, monkeypatch):
    """On a GPU the Trainer runs steps under bf16 autocast; CPU autocast stands in for it: the
    run must give the same vectors as without it."""
    from rnnkit.train import trainer as trainer_mod
    from rnnkit.train.word2vec import run_word2vec

    text = _text(tmp_path / "c.txt", 100)
    given = {"text": str(text), "min_count": 1, "embed": 8, "steps": 3, "engine": "torch",
             "loss": "negative", "chunk_words": 200, "progress": False}
    run_word2vec({**given, "out": str(tmp_path / "plain")})
    monkeypatch.setattr(trainer_mod.Trainer, "_autocast",
                        lambda self: torch.autocast("cpu", dtype=torch.bfloat16))
    run_word2vec({**given, "out": str(tmp_path / "autocast")})
    a, b = (rnnkit.load(tmp_path / name, "last").vectors for name in ("plain", "autocast"))
    assert torch.equal(a, b)


def test_tiny_vocabulary_takes_the_full_softmax(tmp_path):
    from rnnkit.train.word2vec import run_word2vec

    s = run_word2vec({"text": str(_text(tmp_path / "c.txt", 50)), "min_count": 1, "embed": 4,
                      "steps": 2, "progress": False, "out": str(tmp_path / "run")})
    assert s["loss"] == "softmax" and s["engine"] == "torch" and math.isfinite(s["val_loss"])


def test_wordsim_over_a_few_pairs_is_reported_as_not_measured(tmp_path, capsys):
    """A text that covers a handful of WordSim-353's pairs: null in summary.json, not a
    correlation of a few pairs, and the report says how many and that more text is needed."""
    from rnnkit.embeddings import MIN_PAIRS

    rng = random.Random(0)
    vocab = "love sex tiger cat book paper computer keyboard internet plane car train".split()
    text = tmp_path / "c.txt"
    text.write_text("\n\n".join(" ".join(rng.choices(vocab, k=8)) for _ in range(100)))
    out = tmp_path / "run"
    assert main(["train", "word2vec", "--text", str(text), "--min-count", "1", "--embed", "8",
                 "--steps", "2", "--no-progress", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    pairs = s["test_wordsim353_pairs"]
    assert 3 <= pairs < MIN_PAIRS and s["test_wordsim353"] is None
    printed = capsys.readouterr().out
    assert f"WordSim-353 not measured ({pairs} pairs covered, needs {MIN_PAIRS}: more text)" \
        in printed, printed


# ---- bad input --------------------------------------------------------------------------------

def test_corpus_smaller_than_the_window(tmp_path, capsys):
    f = tmp_path / "tiny.txt"
    f.write_text("a b c\n")
    assert main(["train", "word2vec", "--text", str(f), "--min-count", "1", "--window", "5",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no more than the --window 5" in err and "lower --window" in err
    assert not (tmp_path / "r" / "config.json").exists()


def test_min_count_that_empties_the_vocabulary(tmp_path, capsys):
    f = tmp_path / "t.txt"
    f.write_text("one two three two\n")
    assert main(["train", "word2vec", "--text", str(f), "--min-count", "5",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--min-count 5 leaves the vocabulary empty" in err and "'two', 2" in err


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_vocab_must_be_positive(tmp_path, capsys, value):
    text = _text(tmp_path / "c.txt", 50)
    assert main(["train", "word2vec", "--text", str(text), "--min-count", "1", "--max-vocab",
                 value, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    assert "--max-vocab must be a positive integer" in err and f"got {value}" in err, err
    assert not (tmp_path / "r" / "config.json").exists()


def test_embed_needs_a_run_or_a_file(tmp_path, capsys):
    assert main(["embed", "--neighbours", "king"]) == 2
    assert "give a word2vec run directory or --import FILE" in capsys.readouterr().err
    assert main(["embed", "--import", str(tmp_path / "none.txt"), "--neighbours", "x"]) == 2
    assert "no such file" in capsys.readouterr().err


# ---- pretrained vectors in the language model --------------------------------------------------

def test_language_model_starts_from_word2vec_vectors(tmp_path):
    from rnnkit.train.checkpoint import load_checkpoint
    from rnnkit.train.lm import run_lm

    text = _text(tmp_path / "c.txt", 60)
    words = "cat dog hammer runs cuts".split()
    vectors = torch.randn(len(words), 12)
    vec_file = write_word2vec(tmp_path / "v.txt", words, vectors)
    from rnnkit.data.tokenizers import Tokenizer

    for freeze in (True, False):
        out = tmp_path / f"lm{freeze}"
        s = run_lm({"text": str(text), "tokenizer": "word", "embeddings": str(vec_file),
                    "freeze_embeddings": freeze, "hidden": 16, "steps": 5, "batch_size": 4,
                    "seq_len": 8, "lr": 0.05, "progress": False, "out": str(out),
                    "val_fraction": 0.1, "test_fraction": 0.1})
        assert s["embeddings_coverage"] > 0
        tok = Tokenizer.load(out / "checkpoints")
        weight = load_checkpoint(out / "checkpoints" / "last.safetensors") \
            .model_state["embedding.weight"]
        rows = {t.strip(): i for i, t in enumerate(tok.vocab)}
        got = torch.stack([weight[rows[w]] for w in words])
        assert torch.equal(got, vectors) == freeze
        if not freeze:
            torch.testing.assert_close(got, vectors, atol=0.5, rtol=0)


@pytest.mark.slow  # two trainings on 300 k characters of the Wikipedia extract: ~30 s
def test_bench_quick_writes_the_side_by_side_table(tmp_path, capsys):
    from rnnkit.bench.word2vec import main as bench

    assert bench(["--quick", "--json", str(tmp_path / "b.json")]) == 0
    table = capsys.readouterr().out
    assert "rnnkit" in table and "gensim" in table and "speed: rnnkit / gensim" in table
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["runs"]["rnnkit"][0]["vocab_size"] == r["runs"]["gensim"][0]["vocab_size"]
    assert r["speed_ratio"] > 0 and isinstance(r["score_goal_met"], bool)
