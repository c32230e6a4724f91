"""Sequence tagging (``rnnkit train tagger``): tagged sequences, vocabulary, model, task.

The data are sequences with a tag per token (``data.tagged``): the built-in ``--dataset
python-tokens`` (characters of Python source, each tagged with its token class) or the user's
``--conll PATH`` (words and tags). The tokens get a vocabulary built on the training split
(``data.vocab.Vocab``: characters or words, ``<unk>`` for the rest); the tags are the
training split's. Batches are drawn as seq2seq's are: a seeded shuffle, sequences of similar
length together.

The loss is the cross-entropy of every token's tag (padded steps left out). With words, a word
seen once in training is read as ``<unk>`` a quarter of the time (word dropout), so the model
learns what to make of the unknown words it meets later. Validation scores per token: the
loss, the accuracy and the macro-F1 over tags; the best checkpoint is the one with the fewest
wrong tags (``error = 1 - accuracy``), the lower loss among equals. At the end: the confusion
matrix of the test tokens (``confusion.txt``, ``confusion.png``) and, beside the network,
the baseline every tagger must beat: each token's most frequent training tag (the most
frequent tag overall for a token never seen), ``*_baseline_*`` in the summary.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.tagged import Sentence, Tagged, load_tagged
from ..data.vectors import pretrained_embedding, read_word2vec
from ..data.vocab import SPECIALS, UNK_ID, Vocab
from ..errors import UserError
from ..models.tagger import SequenceTagger, describe
from . import distributed as D
from .checkpoint import atomic_write_bytes
from .classifier import (
    classification_scores,
    confusion_matrix,
    confusion_text,
    plot_confusion,
)
from .config import check_counts
from .rundir import RunDir
from .runs import launch, open_run, own_dropout, say, settings_for, write_run_files
from .seq2seq import Seq2SeqTask
from .state import seed_everything
from .trainer import Trainer, TrainSettings

DEFAULT_DATASET = "python-tokens"
EVAL_BATCH = 64
IGNORE = -100  # the tag of a padded step: no loss, no score
WORD_DROPOUT = 0.25  # share of the once-seen training words read as <unk>
VOCAB_FILE, VOCAB_FORMAT = "tagger-vocab.json", "rnnkit-tagger-vocab"

DEFAULTS: dict[str, Any] = {
    "task": "tagger",
    # data
    "dataset": None, "conll": None, "val": None, "test": None, "val_fraction": 0.1,
    "test_fraction": 0.1, "max_chars": 1_500_000, "seq_len": 256, "vocab_size": None,
    "baseline": True, "embeddings": None, "freeze_embeddings": False,
    # model
    "cell": "lstm", "embed": 32, "hidden": 128, "layers": 1, "bidirectional": True,
    "dropout": 0.1, "backend": "auto",
    # batches
    "batch_size": 32,
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": None, "epochs": None, "max_time": 240.0, "lr": 3e-3, "optimizer": "adamw",
    "weight_decay": 0.01, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 100, "min_lr_ratio": 0.1, "ema": 0.0, "patience": 0,
    "eval_every": None, "eval_examples": 200, "log_every": 10, "checkpoint_every": 100,
    "seed": 0, "device": "auto", "threads": None, "progress": True,
    # run directory
    "out": None, "resume": None,
}


PAD_TO = 8  # T rounded up to a multiple: a few shapes, not one per batch, for the allocator


def pad(seqs: list[list[int]], value: int = 0, multiple: int = 1) -> Tensor:
    """Id lists as a time-major (T, B) tensor, padded with ``value`` (T a ``multiple``).

    Example:
        >>> pad([[1, 2, 3], [4]], multiple=4).T.tolist()
        [[1, 2, 3, 0], [4, 0, 0, 0]]
    """
    T = -(-max(map(len, seqs)) // multiple) * multiple
    out = torch.full((T, len(seqs)), value, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[:len(s), b] = torch.tensor(s, dtype=torch.long)
    return out


class Encoded:
    """One split's token ids and tag ids, a list per sequence."""

    def __init__(self, sentences: list[Sentence], vocab: Vocab, tags: list[str]):
        index = {t: i for i, t in enumerate(tags)}
        self.src = [[vocab.index.get(t, UNK_ID) for t in tokens] for tokens, _ in sentences]
        self.tags = [[index[t] for t in ts] for _, ts in sentences]

    def __len__(self) -> int:
        return len(self.src)

    def tokens(self) -> int:
        return sum(map(len, self.src))

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(ids (T, B), lengths (B,), tags (T, B), ``IGNORE`` where padded)."""
        # every batch a new length would keep a new set of buffers in the engine's pool and
        # the allocator (2.3 GB more over a default run): lengths rounded up to PAD_TO
        return (pad([self.src[i] for i in rows], multiple=PAD_TO),
                torch.tensor([len(self.src[i]) for i in rows]),
                pad([self.tags[i] for i in rows], IGNORE, PAD_TO))


class TaggerTask:
    """Tagged sequences for the Trainer (see ``trainer.Task``)."""

    name, unit, monitor = "tagger", "tokens", "error"
    tie_break = "loss"  # equal counts of wrong tags: keep the surer model
    # the batches are seq2seq's: a shuffle by seed and epoch, similar lengths together
    batches_per_epoch = Seq2SeqTask.batches_per_epoch
    start_epoch = Seq2SeqTask.start_epoch
    state_tensors = Seq2SeqTask.state_tensors
    load_state_tensors = Seq2SeqTask.load_state_tensors

    def __init__(self, data: dict[str, Encoded], tags: list[str], vocab: Vocab,
                 settings: dict[str, Any], dist: D.Dist, device: torch.device):
        self.s, self.dist, self.device = settings, dist, device
        self.data, self.tags = data, tags  # data: "train", "val" and "test"
        B = settings["batch_size"]
        if B % dist.world:
            raise UserError(f"--batch-size {B} is the global batch: it must divide evenly over "
                            f"the {dist.world} processes; use a multiple of {dist.world}")
        self.local = slice(dist.rank * B // dist.world, (dist.rank + 1) * B // dist.world)
        self.batches: list[list[int]] = []
        self.once = None  # words seen once in training (word dropout), as a mask over ids
        if vocab.kind == "word":
            counts = Counter(i for s in data["train"].src for i in s)
            self.once = torch.zeros(len(vocab), dtype=torch.bool)
            self.once[[i for i, n in counts.items() if n == 1 and i >= len(SPECIALS)]] = True
            self.once = self.once.to(device)

    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        if not self.batches:
            self.start_epoch(epoch)  # a resumed run starts mid-epoch
        rows = self.batches[index][self.local]
        x, lengths, y = (t.to(self.device) for t in self.data["train"].batch(rows))
        if self.once is not None:
            drop = self.once[x] & (torch.rand(x.shape, device=x.device) < WORD_DROPOUT)
            x = x.masked_fill(drop, UNK_ID)
        logits = model(x, lengths).float()
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        return loss, int(lengths.sum())

    @torch.no_grad()
    def predict(self, model: nn.Module, split: str, n: int | None = None
                ) -> tuple[Tensor, Tensor]:
        """The logits (N, C) and true tags (N,) of every token of the first ``n`` sequences
        of ``split`` (all: None), in order."""
        data = self.data[split]
        n = len(data) if n is None else min(n, len(data))
        was_training = model.training
        model.eval()
        out: list[Tensor | None] = [None] * n
        order = sorted(range(n), key=lambda r: len(data.src[r]))  # little padding
        for i in range(0, n, EVAL_BATCH):
            rows = order[i:i + EVAL_BATCH]
            x, lengths, _ = data.batch(rows)
            logits = model(x.to(self.device), lengths).float().cpu()
            for b, r in enumerate(rows):
                out[r] = logits[:len(data.src[r]), b]
        model.train(was_training)
        truth = torch.tensor([t for s in data.tags[:n] for t in s], dtype=torch.long)
        return torch.cat(out) if out else torch.empty(0, len(self.tags)), truth

    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Per token: loss, accuracy, macro-F1 over tags, ``error = 1 - accuracy``; while
        training (not ``full``) the first ``eval_examples`` sequences only."""
        if not len(self.data[split]):
            return {}
        n = None if full or not self.s["eval_examples"] else self.s["eval_examples"]
        logits, y = self.predict(model, split, n)
        scores = classification_scores(y, logits.argmax(-1), len(self.tags))
        return {"loss": float(F.cross_entropy(logits, y)), **scores,
                "error": 1 - scores["accuracy"]}

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        pass


def baseline_scores(data: dict[str, Encoded], num_tags: int) -> dict[str, float]:
    """Each token's most frequent training tag (a token never seen: the most frequent tag);
    ``val_/test_baseline_accuracy`` and ``_macro_f1``."""
    pairs = Counter((i, t) for s, ts in zip(data["train"].src, data["train"].tags)
                    for i, t in zip(s, ts))
    overall = Counter(t for ts in data["train"].tags for t in ts).most_common(1)[0][0]
    best: dict[int, tuple[int, int]] = {}
    for (i, t), n in pairs.items():
        if n > best.get(i, (0, -1))[0]:
            best[i] = (n, t)
    out = {}
    for split in ("val", "test"):
        if len(data[split]):
            guess = torch.tensor([best.get(i, (0, overall))[1] for s in data[split].src
                                  for i in s])
            truth = torch.tensor([t for ts in data[split].tags for t in ts])
            scores = classification_scores(truth, guess, num_tags)
            out.update({f"{split}_baseline_{k}": v for k, v in scores.items()})
    return out


# ---- the run ------------------------------------------------------------------------------

def run_tagger(given: dict[str, Any]) -> dict[str, Any]:
    """Train a sequence tagger; return the summary (also in ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults.

    Example:
        >>> s = run_tagger({"dataset": "python-tokens", "out": "/tmp/tok"})  # doctest: +SKIP
        >>> s["test_accuracy"] > 0.99                                        # doctest: +SKIP
        True
    """
    return launch(settings_for(given, DEFAULTS), _run)


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    run, resume = open_run(s, "tagger", dist)
    train_settings = TrainSettings.from_dict(s)

    # everything that can fail on the user's input, before anything is written
    seed_everything(s["seed"])
    check_counts(s)
    if not s["conll"] and not s["dataset"]:
        s["dataset"] = DEFAULT_DATASET
    if s["conll"] and s["val"] is None and not s["val_fraction"] > 0:
        raise UserError(f"--val-fraction must be above 0 (the best checkpoint is chosen on "
                        f"validation sentences), or give --val PATH; got {s['val_fraction']}")
    data = load_tagged(s["dataset"], s["conll"], val_path=s["val"], test_path=s["test"],
                       val_fraction=s["val_fraction"], test_fraction=s["test_fraction"],
                       seed=s["seed"], max_chars=s["max_chars"], seq_len=s["seq_len"])
    if resume and (run.checkpoints / VOCAB_FILE).is_file():
        vocab = load_vocab(run.checkpoints)
    else:
        vocab = Vocab.build((" ".join(tokens) if data.kind == "word" else "".join(tokens)
                             for tokens, _ in data.train), data.kind, "input",
                            s["vocab_size"])
    vectors = pretrained(s, vocab) if s["embeddings"] and not resume else None
    model = SequenceTagger(len(vocab), len(data.tags), cell=s["cell"], embed=s["embed"],
                           hidden=s["hidden"], layers=s["layers"],
                           bidirectional=s["bidirectional"], dropout=s["dropout"],
                           freeze_embedding=s["freeze_embeddings"], backend=s["backend"])
    coverage = None
    if vectors is not None:
        weights, coverage = pretrained_embedding(vocab.tokens, *vectors,
                                                 model.input.weight.detach())
        model.input.weight.data.copy_(weights)
    own_dropout(dist, s["seed"])
    encoded = {split: Encoded(getattr(data, split), vocab, data.tags)
               for split in ("train", "val", "test")}
    task = TaggerTask(encoded, data.tags, vocab, s, dist, device)

    write_run_files(run, resume, dist, {**s, "resume": None, "tags": data.tags,
                                        "token_kind": data.kind, "model": model.config},
                    lambda d: save_vocab(d, vocab))
    extra: dict[str, Any] = {
        "dataset": data.source, "split": data.split, "tags": data.tags, "token_kind": data.kind,
        "train_sequences": len(data.train), "val_sequences": len(data.val),
        "test_sequences": len(data.test), "train_tokens": encoded["train"].tokens(),
        "val_tokens": encoded["val"].tokens(), "test_tokens": encoded["test"].tokens(),
        "vocab_size": len(vocab), "cell": s["cell"], "out": s["out"]}
    if coverage is not None:
        extra["embeddings_coverage"] = coverage
    if dist.main and s["baseline"]:
        extra.update(baseline_scores(encoded, len(data.tags)))
    if dist.main:
        _announce(s, data, vocab, model, extra)
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    summary = trainer.fit()
    if dist.main and summary["status"] not in ("nonfinite", "interrupted"):
        write_confusion(run, task, trainer.model)
    return summary


def _announce(s: dict[str, Any], data: Tagged, vocab: Vocab, model: nn.Module,
              extra: dict[str, Any]) -> None:
    """What the run trains on and with, and the baseline to beat (stderr)."""
    what = "characters" if data.kind == "char" else "words"
    line = (f"{data.source}: {extra['train_tokens']:,} training {what} in "
            f"{len(data.train):,} sequences ({extra['val_tokens']:,} val, "
            f"{extra['test_tokens']:,} test, {data.split} split); {len(data.tags)} tags; "
            f"{len(vocab):,} {what} in the vocabulary; {describe(model.config)}; "
            f"{sum(p.numel() for p in model.parameters()):,} parameters")
    if "val_baseline_accuracy" in extra:
        line += (f"; most-frequent-tag baseline: val accuracy "
                 f"{extra['val_baseline_accuracy']:.3f}, macro-F1 "
                 f"{extra['val_baseline_macro_f1']:.3f}")
    say(line)
    if "embeddings_coverage" in extra:
        say(f"{s['embeddings']}: vectors of {s['embed']} numbers for "
            f"{extra['embeddings_coverage']:.0%} of the {len(vocab):,} words "
            f"({'frozen' if s['freeze_embeddings'] else 'fine-tuned'}; the rest start random)")


def pretrained(s: dict[str, Any], vocab: Vocab) -> tuple[list[str], Tensor]:
    """The ``--embeddings`` file's vectors of the vocabulary's words; sets ``s["embed"]`` to
    their size."""
    if vocab.kind != "word":
        raise UserError("--embeddings holds word vectors: use them with --conll (words), not "
                        "with characters")
    found, vectors = read_word2vec(s["embeddings"], keep={t.lower() for t in vocab.tokens})
    if not found:
        raise UserError(f"{s['embeddings']} has a vector for none of the training words; give "
                        "vectors of their language, or drop --embeddings")
    s["embed"] = vectors.shape[1]
    return found, vectors


def save_vocab(directory, vocab: Vocab) -> None:
    """``directory/tagger-vocab.json``: the token kind and tokens (written atomically)."""
    data = {"format": VOCAB_FORMAT, **vocab.to_dict()}
    atomic_write_bytes(directory / VOCAB_FILE, json.dumps(data, ensure_ascii=False).encode())


def load_vocab(directory) -> Vocab:
    """The vocabulary ``save_vocab`` wrote; a ``UserError`` names any damage."""
    path = directory / VOCAB_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing: this run has no vocabulary; restore it from a "
                        "copy or train again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != VOCAB_FORMAT:
            raise ValueError(f"no \"format\": \"{VOCAB_FORMAT}\"")
        return Vocab.from_dict(data, "input")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is damaged ({e}); restore it from a copy or train "
                        "again") from e


def write_confusion(run: RunDir, task: TaggerTask, model: nn.Module) -> None:
    """``confusion.txt`` and ``confusion.png`` of the test tokens (the validation tokens when
    there are no test sequences)."""
    split = "test" if len(task.data["test"]) else "val"
    if not len(task.data[split]):
        return
    logits, truth = task.predict(model, split)
    m = confusion_matrix(truth, logits.argmax(-1), len(task.tags))
    title = f"confusion matrix, {split} tokens ({len(truth):,})"
    atomic_write_bytes(run.file("confusion.txt"), confusion_text(m, task.tags, title).encode())
    plot_confusion(run.file("confusion.png"), m, task.tags, title)
