"""Word vectors (``rnnkit train word2vec``): a corpus, a vocabulary, Word2Vec, the Trainer.

The corpus is ``--text PATH`` or a built-in ``--dataset`` (``wiki``: the Wikipedia extract in
gensim's test data, markup stripped by ``data.wiki``; ``python-docs``; any lm corpus). It is
cut into sentences of lowercase words and a vocabulary of the words seen ``min_count`` times
(``data.skipgram``). A sentence is a paragraph (blank lines between them), or a line when the
paragraphs average more than ``LINES_PER_PARAGRAPH`` lines, as in a file of one document
(review, docstring) per line: windows never cross a document.

Why a step is a chunk of ~``chunk_words`` words: word2vec makes one tiny update per word pair
(tens of millions an epoch), and the Trainer's per-batch step costs far more than one. So one
Trainer step trains a whole chunk of sentences, in word2vec's own fast inner loop: the
compiled Hogwild loop (``engine/word2vec.cpp``, ``workers`` threads) on the CPU, or batches of
``batch_size`` pairs with the vectorised PyTorch update (``models.word2vec.sgns_step``) on a
GPU or without a compiler. Either updates the weights in place, with SGD at a rate falling
linearly from ``lr`` to ``min_lr`` over the budget (word2vec.c and gensim do that, not Adam):
the step hands the Trainer its loss as a detached number, so the Trainer's own backward and
optimizer have nothing to do, while everything else stays the Trainer's: the run directory,
metrics, evaluation points, resumable checkpoints, progress bar, budgets and signals. Each
chunk's random draws are seeded from (seed, step), so a resumed run draws what the
uninterrupted one would have.

Validation: the loss on a fixed sample of windows (the held-out ``--val`` text or
``--val-fraction`` when given; else a fixed sample of the training text: word2vec is usually
trained on all of it) with fixed negatives, and the WordSim-353 and SimLex-999 correlations;
the test scores add the analogy questions (``rnnkit.embeddings``). A word-pair correlation
over fewer than ``embeddings.MIN_PAIRS`` pairs of known words is not measured (NaN: null in
summary.json).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import Tensor, nn

from ..data.skipgram import (
    Encoded,
    Vocab,
    draw_negatives,
    encode,
    keep_probabilities,
    one_document_per_line,
    sentences,
    unigram_table,
    window_pairs,
)
from ..errors import UserError
from ..models.word2vec import Word2Vec, sgns_step, softmax_step
from . import distributed as D
from .rundir import RunDir
from .runs import launch, open_run, say, settings_for
from .state import seed_everything
from .trainer import Trainer, TrainSettings

DEFAULT_DATASET = "wiki"
SOFTMAX_BELOW = 1000  # --loss auto: the full softmax for vocabularies smaller than this
VAL_WINDOWS = 4000  # windows in the validation sample

DEFAULTS: dict[str, Any] = {
    "task": "word2vec",
    # data
    "dataset": None, "text": None, "max_chars": None, "val": None, "val_fraction": 0.0,
    "min_count": 5, "max_vocab": None, "sample": 1e-3,
    # model
    "architecture": "skipgram", "embed": 100, "window": 5, "dynamic_window": True,
    "negative": 5, "loss": "auto",
    # the inner loop
    "engine": "auto", "workers": None, "chunk_words": 50_000, "batch_size": 1024,
    # training: SGD, linear decay from lr (skip-gram 0.025, CBOW 0.05) to min_lr
    "steps": None, "epochs": 5, "max_time": None, "lr": None, "min_lr": 1e-4,
    "eval_every": None, "log_every": 5, "checkpoint_every": 50, "seed": 0, "device": "auto",
    "threads": None, "progress": True,
    # run directory
    "out": None, "resume": None,
}
ENGINES = ("auto", "compiled", "torch")


def corpus_text(s: dict[str, Any]) -> str:
    """The training text: ``--text`` or a built-in ``--dataset`` (default wiki)."""
    from ..data.corpora import DATASETS, load_corpus

    if s["text"] and s["dataset"]:
        raise UserError("give either --text PATH or --dataset NAME, not both")
    if s["text"]:
        return load_corpus(text=s["text"], max_chars=s["max_chars"], report=say)
    name = s["dataset"] or DEFAULT_DATASET
    if name == "wiki":
        from ..data.wiki import wiki_text

        text = wiki_text()
        return text if s["max_chars"] is None else text[:s["max_chars"]]
    if name not in DATASETS:
        raise UserError(f"unknown --dataset {name!r}; choose wiki or one of "
                        f"{', '.join(DATASETS)}, or give --text PATH")
    return load_corpus(name, max_chars=s["max_chars"])


class Word2VecTask:
    """Chunks of a corpus for the Trainer (see ``trainer.Task``); each step trains one chunk
    with word2vec's own inner loop (module doc)."""

    name, unit, monitor = "word2vec", "tokens", "loss"

    def __init__(self, train: Encoded, val: Encoded, vocab: Vocab, s: dict[str, Any],
                 device: torch.device):
        self.s, self.vocab, self.device = s, vocab, device
        self.train, self.val = train, val
        self.keep = keep_probabilities(vocab.counts, s["sample"])
        self.table = unigram_table(vocab.counts)
        self.chunks = _chunk_cuts(train, s["chunk_words"])
        self.ops = None
        if s["engine"] != "torch" and device.type == "cpu" and s["loss"] == "negative":
            from ..engine.word2vec import ops

            self.ops = ops()
            if self.ops is None and s["engine"] == "compiled":
                raise UserError("--engine compiled: the compiled loop cannot be built here (see "
                                "the warning); use --engine torch")
        self.engine = "compiled" if self.ops is not None else "torch"
        self.trainer: Trainer | None = None  # set by attach(): the schedule reads its budget
        self.val_sample = self._val_sample()
        from ..data.wordsets import analogy_questions, word_pairs

        for name in ("wordsim353", "simlex999"):  # read now, not on the training clock
            word_pairs(name)
        analogy_questions()

    def attach(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def batches_per_epoch(self) -> int:
        return len(self.chunks) - 1

    def start_epoch(self, epoch: int) -> None:
        pass  # the chunks keep the corpus's order, as word2vec.c and gensim do

    def state_tensors(self) -> dict[str, Tensor]:
        return {}  # a chunk's draws are seeded from its step: nothing else to carry

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        pass

    # ---- the rate ---------------------------------------------------------------------------
    def _progress(self, step: int) -> tuple[float, float]:
        """The share of the budget spent at the start and end of ``step``: steps over the step
        budget, else seconds over ``--max-time`` (the last step's length ahead)."""
        t = self.trainer
        if t is None:
            return 0.0, 1.0
        if t.total:
            return step / t.total, (step + 1) / t.total
        ahead = t.p.step_seconds / max(t.p.step, 1)
        return t.p.elapsed / t.s.max_time, (t.p.elapsed + ahead) / t.s.max_time

    def _rates(self, step: int) -> tuple[float, float]:
        lr, low = self.s["lr"], self.s["min_lr"]
        return tuple(max(low, lr - (lr - low) * min(1.0, p)) for p in self._progress(step))

    # ---- a step -----------------------------------------------------------------------------
    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        step = epoch * self.batches_per_epoch() + index
        chunk = self.train.slice(self.chunks[index], self.chunks[index + 1])
        alpha0, alpha1 = self._rates(step)
        seed = self.s["seed"] * 1_000_003 + step
        if self.ops is not None:
            loss, updates, _, _ = self.ops.train_chunk(
                model.input.weight, model.output.weight, chunk.tokens, chunk.bounds, self.keep,
                self.table, self.s["window"], self.s["negative"], self.s["dynamic_window"],
                self.s["architecture"] == "cbow", alpha0, alpha1, seed,
                self.s["workers"]).tolist()
        else:
            loss, updates = train_chunk_torch(model, chunk, self, alpha0, alpha1, seed)
        mean = loss / max(updates, 1)
        return torch.tensor(mean, requires_grad=True), chunk.words  # weights already updated

    # ---- evaluation -------------------------------------------------------------------------
    def _val_sample(self) -> tuple[Tensor, Tensor, Tensor]:
        """Fixed (input, target, negatives) of up to ``VAL_WINDOWS`` windows."""
        data = self.val if self.val.words else self.train
        g = torch.Generator().manual_seed(12345)
        sid = data.sentence_ids()
        centres, contexts = window_pairs(sid, self.s["window"])
        if len(centres) > VAL_WINDOWS * 2 * self.s["window"]:
            keep = torch.randperm(len(centres), generator=g)[:VAL_WINDOWS * 2 * self.s["window"]]
            centres, contexts = centres[keep], contexts[keep]
        tokens = data.tokens.long()
        negatives = draw_negatives(self.table, (len(centres), self.s["negative"]), g)
        return tokens[centres], tokens[contexts], negatives

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """``loss`` (val: per pair of the fixed sample), and the word-similarity scores; the
        test scores add the analogies."""
        from ..embeddings import Embeddings

        out: dict[str, float] = {}
        if split == "val":
            inputs, targets, negatives = (t.to(self.device) for t in self.val_sample)
            if model.config["loss"] == "softmax":
                loss = model.softmax_loss(inputs, targets)
            else:
                loss = model.sgns_loss(inputs, targets, negatives)
            out["loss"] = float(loss) / max(len(inputs), 1)
        emb = Embeddings(self.vocab.words, model.input.weight.detach().cpu())
        out.update(emb.evaluate(analogies=split == "test" and full))
        return out

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        pass


def _chunk_cuts(data: Encoded, words: int) -> list[int]:
    """Sentence indices that cut the corpus into chunks of about ``words`` words."""
    if words < 1:
        raise UserError(f"--chunk-words must be a positive number of words, got {words}")
    goals = torch.arange(words, max(words, data.words), words)
    cuts = torch.searchsorted(data.bounds, goals).tolist()
    n = len(data.bounds) - 1
    return sorted({0, n, *[c for c in cuts if 0 < c < n]})


@torch.no_grad()
def train_chunk_torch(model: Word2Vec, chunk: Encoded, task: Word2VecTask, alpha0: float,
                      alpha1: float, seed: int) -> tuple[float, int]:
    """One chunk with the vectorised PyTorch update: subsample, draw the windows, then SGD in
    batches of ``batch_size`` pairs (skip-gram) or windows (CBOW), the rate falling linearly
    over the chunk. Returns (loss sum, updates)."""
    with torch.autocast(task.device.type, enabled=False):  # the Trainer's bf16 on a GPU: the
        return _train_chunk_torch(model, chunk, task, alpha0, alpha1, seed)  # updates need fp32


def _train_chunk_torch(model: Word2Vec, chunk: Encoded, task: Word2VecTask, alpha0: float,
                       alpha1: float, seed: int) -> tuple[float, int]:
    s, dev = task.s, task.device
    g = torch.Generator(device=dev).manual_seed(seed)
    tokens = chunk.tokens.to(dev).long()
    sid = chunk.sentence_ids().to(dev)
    if s["sample"] > 0:
        keep = task.keep.to(dev)[tokens] >= torch.rand(len(tokens), generator=g, device=dev)
        tokens, sid = tokens[keep], sid[keep]
    if not len(tokens):
        return 0.0, 0
    reduced = (torch.randint(0, s["window"], (len(tokens),), generator=g, device=dev)
               if s["dynamic_window"] else None)
    centres, contexts = window_pairs(sid, s["window"], reduced)
    cbow = s["architecture"] == "cbow"
    if cbow:  # one update per centre: its neighbours' mean predicts it
        inputs, targets = contexts, tokens[torch.unique_consecutive(centres)]
        groups = torch.unique_consecutive(centres, return_counts=True)[1]
    else:
        inputs, targets = tokens[contexts], tokens[centres]  # word2vec.c's way round
    n = len(targets)
    table = task.table.to(dev)
    syn0, syn1 = model.input.weight, model.output.weight
    loss, B = 0.0, s["batch_size"]
    starts = torch.cumsum(groups, 0) - groups if cbow else None
    for lo in range(0, n, B):
        hi = min(n, lo + B)
        alpha = alpha0 - (alpha0 - alpha1) * lo / n
        if cbow:  # the windows lo..hi: their context positions, grouped
            first, last = int(starts[lo]), int(starts[hi - 1] + groups[hi - 1])
            rows = tokens[inputs[first:last]]
            owner = torch.repeat_interleave(torch.arange(hi - lo, device=dev), groups[lo:hi])
            h = torch.zeros(hi - lo, syn0.shape[1], device=dev).index_add_(0, owner, syn0[rows])
            h /= groups[lo:hi, None]
        else:
            rows = inputs[lo:hi]
            h = syn0[rows]
        if s["loss"] == "softmax":
            part, dh = softmax_step(syn1, h, targets[lo:hi], alpha)
        else:
            negatives = draw_negatives(table, (hi - lo, s["negative"]), g)
            part, dh = sgns_step(syn0, syn1, h, targets[lo:hi], negatives, alpha)
        syn0.index_add_(0, rows, dh[owner] if cbow else dh)
        loss += part
    return loss, n


# ---- the run ------------------------------------------------------------------------------

def run_word2vec(given: dict[str, Any]) -> dict[str, Any]:
    """Train word vectors; return the summary (also in ``RUN/summary.json``).

    Example:
        >>> s = run_word2vec({"dataset": "wiki", "out": "/tmp/w2v"})     # doctest: +SKIP
        >>> s["test_wordsim353"] > 0.2                                     # doctest: +SKIP
        True
    """
    return launch(settings_for(given, DEFAULTS), _run)


def check_settings(s: dict[str, Any]) -> None:
    """Refuse settings word2vec cannot train with, naming the flag."""
    from ..models.word2vec import ARCHITECTURES

    if s["architecture"] not in ARCHITECTURES:
        raise UserError(f"unknown --architecture {s['architecture']!r}; choose skipgram or cbow")
    if s["engine"] not in ENGINES:
        raise UserError(f"unknown --engine {s['engine']!r}; choose from {', '.join(ENGINES)}")
    if s["loss"] not in ("auto", "negative", "softmax"):
        raise UserError(f"unknown --loss {s['loss']!r}; choose auto, negative or softmax")
    for flag in ("embed", "window", "min_count", "batch_size"):
        if not isinstance(s[flag], int) or s[flag] < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be a positive integer, got "
                            f"{s[flag]}")
    if not isinstance(s["negative"], int) or s["negative"] < 1:
        raise UserError(f"--negative must be a positive integer, got {s['negative']}")
    if not 0 <= s["sample"] < 1:
        raise UserError(f"--sample must be in [0, 1) (0: no subsampling), got {s['sample']}")
    if not 0 <= s["val_fraction"] < 1:
        raise UserError(f"--val-fraction must be in [0, 1), got {s['val_fraction']}")
    if s["workers"] is not None and s["workers"] < 1:
        raise UserError(f"--workers must be a positive integer, got {s['workers']}")
    if s["max_vocab"] is not None and (not isinstance(s["max_vocab"], int)
                                       or s["max_vocab"] < 1):
        raise UserError("--max-vocab must be a positive integer (the most words to keep; "
                        f"leave it out to keep all), got {s['max_vocab']}")


def _data(s: dict[str, Any]) -> tuple[Encoded, Encoded, Vocab, dict[str, Any]]:
    """The training and validation windows' words as ids, the vocabulary, and what to report."""
    text = corpus_text(s)
    corpus = sentences(text)
    held: list[list[str]] = []
    if s["val"]:
        from ..data.corpora import load_corpus

        held = sentences(load_corpus(text=s["val"], flag="--val"))
    elif s["val_fraction"]:
        cut = len(corpus) - max(1, int(len(corpus) * s["val_fraction"]))
        if cut < 1:
            raise UserError("the text is too short to hold out --val-fraction of it; give more "
                            "text or --val-fraction 0")
        corpus, held = corpus[:cut], corpus[cut:]
    vocab = Vocab.build(corpus, s["min_count"], s["max_vocab"])
    train, val = encode(corpus, vocab), encode(held, vocab)
    if train.words <= s["window"]:
        raise UserError(f"the corpus has {train.words} words in its vocabulary, no more than "
                        f"the --window {s['window']}: give more text, or lower --window or "
                        "--min-count")
    if (train.bounds[1:] - train.bounds[:-1]).max() < 2:
        raise UserError("every sentence of the corpus has a single known word, so no window "
                        "has a pair; give more text or lower --min-count")
    info = {"corpus_words": sum(map(len, corpus)), "train_words": train.words,
            "sentences": len(train.bounds) - 1,
            "sentence_is": "line" if one_document_per_line(text) else "paragraph",
            "vocab_size": len(vocab),
            "val_words": val.words}
    return train, val, vocab, info


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    if dist.active:
        raise UserError("word2vec trains with Hogwild threads in one process (--workers N), "
                        "not under torchrun; run it as plain rnnkit train word2vec")
    run, resume = open_run(s, "word2vec", dist)
    check_settings(s)
    if s["lr"] is None:
        s["lr"] = 0.05 if s["architecture"] == "cbow" else 0.025  # word2vec.c's rates
    if s["workers"] is None:
        s["workers"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    seed_everything(s["seed"])
    t0 = time.perf_counter()
    train, val, vocab, info = _data(s)
    if s["loss"] == "auto":
        s["loss"] = "softmax" if len(vocab) < SOFTMAX_BELOW else "negative"
    # the Trainer's own optimizer steps nothing (the inner loop updates the weights): plain
    # SGD, no decay, no clipping, no warmup
    settings = {**s, "optimizer": "sgd", "weight_decay": 0.0, "momentum": 0.0, "clip": 0.0,
                "schedule": "constant", "warmup": 0}
    train_settings = TrainSettings.from_dict(settings)
    model = Word2Vec(len(vocab), s["embed"], s["architecture"], s["loss"])
    task = Word2VecTask(train, val, vocab, s, device)
    run.make()
    if not resume:
        vocab.save(run.checkpoints / "vocab.json")
        run.write_json("config.json", {**s, "resume": None, "model": model.config})
    extra = {"dataset": s["text"] or s["dataset"] or DEFAULT_DATASET, **info,
             "architecture": s["architecture"], "loss": s["loss"], "engine": task.engine,
             "workers": s["workers"] if task.engine == "compiled" else None,
             "prepare_seconds": time.perf_counter() - t0, "out": s["out"]}
    say(f"{extra['dataset']}: {info['corpus_words']:,} words in {info['sentences']:,} "
        f"sentences (a {info['sentence_is']} each), {info['train_words']:,} in the vocabulary "
        f"of {len(vocab):,} words (min count {s['min_count']}); {s['architecture']}, "
        f"{s['loss']} loss, dim {s['embed']}, window {s['window']}; {task.engine} loop"
        + (f" ({s['workers']} threads)" if task.engine == "compiled" else f" on {device}"))
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    task.attach(trainer)
    return trainer.fit()
