"""Encoder-decoder training (``rnnkit train seq2seq``): pairs, vocabularies, model, the task.

The data are (source, target) pairs: a built-in generated set (``--dataset addition``,
``dates``, ``numbers``, with a fixed split) or the user's ``--tsv PATH`` (``data.pairs``).
Each side gets its own vocabulary of characters or words. A batch is a set of pairs padded to
its longest source and target; batches are drawn from a shuffled order (seeded by the run's
seed and the epoch), with pairs of similar length put together so little of a batch is padding.

The loss is the cross-entropy of every target token and the final ``</s>`` under teacher
forcing. Validation scores the loss, the token accuracy, and what a user cares about: the
share of outputs that greedy decoding gets exactly right (``exact``); the best checkpoint is
the one with the fewest wrong outputs (``error = 1 - exact``), the lower loss among equals.

Beside the network, the classical baseline on the same split (``nearest_pair_scores``): each
held-out source gets the target of the most similar training source, by the cosine of their
character n-gram TF-IDF vectors (scikit-learn), searching up to 50,000 training pairs and
scoring up to 2,000 held-out pairs of each split; ``*_nearest_exact`` and
``*_nearest_accuracy`` in the summary. It shows what recall of the training pairs alone
scores: 0 exact on addition, whose held-out questions never occur in training (about 39 % of
tokens), high on a file full of near-duplicates.
"""

from __future__ import annotations

import math
import random
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pairs import Pairs, load_pairs
from ..data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab, load_vocabs, save_vocabs
from ..errors import UserError
from ..models.seq2seq import Seq2Seq, describe
from . import distributed as D
from .config import check_counts
from .rundir import RunDir
from .runs import launch, open_run, own_dropout, say, settings_for, write_run_files
from .state import seed_everything
from .trainer import Trainer, TrainSettings

DEFAULT_DATASET = "addition"
BUCKET = 32  # batches whose pairs are sorted by length together (less padding, still shuffled)
EVAL_BATCH = 256
# the baseline's cost is (training pairs) x (held-out pairs) x (n-grams a source): these caps
# keep it to a few seconds on two cores (2,000 held-out pairs: a standard error under 1.2 %)
NEAREST_CAP = 50_000  # training pairs searched
NEAREST_HELD_OUT = 2_000  # held-out pairs scored, each split
NEAREST_CHUNK = 256  # held-out sources scored at a time (the similarity columns in memory)

DEFAULTS: dict[str, Any] = {
    "task": "seq2seq",
    # data
    "dataset": None, "tsv": None, "val": None, "test": None, "val_fraction": 0.1,
    "test_fraction": 0.1, "digits": 3, "reverse": False, "tokens": "char", "vocab_size": None,
    "max_length": None, "header": None, "baseline": True,
    # model
    "cell": "lstm", "embed": 64, "hidden": 256, "layers": 1, "bidirectional": True,
    "residual": False, "attention": "bahdanau", "dropout": 0.1, "backend": "auto",
    # batches
    "batch_size": 64,
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": None, "epochs": None, "max_time": 240.0, "lr": 3e-3, "optimizer": "adamw",
    "weight_decay": 0.01, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 100, "min_lr_ratio": 0.1, "ema": 0.0, "patience": 0,
    "eval_every": None, "eval_examples": 1000, "log_every": 10, "checkpoint_every": 100,
    "seed": 0, "device": "auto", "threads": None, "progress": True,
    # run directory
    "out": None, "resume": None,
}


def pad(seqs: list[list[int]], start: bool = False, end: bool = False) -> Tensor:
    """Token id lists as a time-major (T, B) tensor padded with ``<pad>``; ``start`` puts
    ``<s>`` before each, ``end`` puts ``</s>`` after each."""
    rows = [([BOS_ID] if start else []) + s + ([EOS_ID] if end else []) for s in seqs]
    out = torch.full((max(map(len, rows)), len(rows)), PAD_ID, dtype=torch.long)
    for b, r in enumerate(rows):
        out[:len(r), b] = torch.tensor(r, dtype=torch.long)
    return out


class Encoded:
    """One split's pairs as token ids (an unknown token of a held-out pair is ``<unk>``)."""

    def __init__(self, pairs: list[tuple[str, str]], source: Vocab, target: Vocab):
        self.pairs = pairs
        self.src = [source.encode(s) for s, _ in pairs]
        self.tgt = [target.encode(t) for _, t in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(source (S, B), lengths (B,), decoder input ``<s> y`` (T, B), target ``y </s>``)."""
        src = [self.src[i] for i in rows]
        tgt = [self.tgt[i] for i in rows]
        lengths = torch.tensor([len(s) for s in src])
        return pad(src), lengths, pad(tgt, start=True), pad(tgt, end=True)


class Seq2SeqTask:
    """Sequence-to-sequence pairs for the Trainer (see ``trainer.Task``)."""

    name, unit, monitor = "seq2seq", "examples", "error"
    tie_break = "loss"  # an easy task is 100 % exact at many evaluations: keep the surest

    def __init__(self, pairs: Pairs, source: Vocab, target: Vocab, settings: dict[str, Any],
                 dist: D.Dist, device: torch.device):
        self.s, self.dist, self.device = settings, dist, device
        self.source, self.target = source, target
        self.data = {"train": Encoded(pairs.train, source, target),
                     "val": Encoded(pairs.val, source, target),
                     "test": Encoded(pairs.test, source, target)}
        B = settings["batch_size"]
        if B % dist.world:
            raise UserError(f"--batch-size {B} is the global batch: it must divide evenly over "
                            f"the {dist.world} processes; use a multiple of {dist.world}")
        self.local = slice(dist.rank * B // dist.world, (dist.rank + 1) * B // dist.world)
        self.batches: list[list[int]] = []

    def batches_per_epoch(self) -> int:
        n, B = len(self.data["train"]), self.s["batch_size"]
        return max(1, n // B if self.dist.active else math.ceil(n / B))

    def start_epoch(self, epoch: int) -> None:
        """This epoch's batches: a shuffled order (a function of seed and epoch, so a resumed
        run repeats it), sorted by source length within buckets, batches shuffled again."""
        data, B = self.data["train"], self.s["batch_size"]
        g = torch.Generator().manual_seed(self.s["seed"] * 1_000_003 + epoch)
        order = torch.randperm(len(data), generator=g).tolist()
        batches = []
        for i in range(0, len(order), B * BUCKET):
            chunk = sorted(order[i:i + B * BUCKET], key=lambda r: len(data.src[r]))
            batches += [chunk[j:j + B] for j in range(0, len(chunk), B)]
        if self.dist.active:  # every rank the same number of full batches
            batches = [b for b in batches if len(b) == B]
        perm = torch.randperm(len(batches), generator=g).tolist()
        self.batches = [batches[k] for k in perm][:self.batches_per_epoch()]

    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        if not self.batches:
            self.start_epoch(epoch)  # a resumed run starts mid-epoch
        rows = self.batches[index][self.local]
        src, lengths, y_in, y_out = (t.to(self.device) for t in self.data["train"].batch(rows))
        logits, _ = model(src, lengths, y_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y_out.reshape(-1),
                               ignore_index=PAD_ID)
        return loss, len(rows)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Loss per target token, token accuracy (teacher forcing), exact match of the greedy
        outputs, and ``error = 1 - exact``; while training (not ``full``) the first
        ``eval_examples`` pairs only."""
        data = self.data[split]
        n = len(data) if full or not self.s["eval_examples"] else min(len(data),
                                                                       self.s["eval_examples"])
        if n == 0:
            return {}
        was_training = model.training
        model.eval()
        nll, tokens, right, exact = 0.0, 0, 0, 0
        order = sorted(range(n), key=lambda r: len(data.src[r]))  # little padding
        for i in range(0, n, EVAL_BATCH):
            rows = order[i:i + EVAL_BATCH]
            src, lengths, y_in, y_out = (t.to(self.device) for t in data.batch(rows))
            logits, _ = model(src, lengths, y_in)
            real = y_out != PAD_ID
            nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                         y_out.reshape(-1), ignore_index=PAD_ID,
                                         reduction="sum"))
            tokens += int(real.sum())
            right += int(((logits.argmax(-1) == y_out) & real).sum())
            outputs, _ = model.greedy(src, lengths)
            exact += sum(out == data.tgt[r] for out, r in zip(outputs, rows))
        model.train(was_training)
        return {"loss": nll / tokens, "accuracy": right / tokens, "exact": exact / n,
                "error": 1 - exact / n}

    def state_tensors(self) -> dict[str, Tensor]:
        return {}  # the batches are a function of seed and epoch

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        pass

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        """A few held-out pairs with the model's outputs, to watch it learn."""
        data = self.data["val"] or self.data["train"]
        rows = list(range(min(4, len(data))))
        src, lengths, _, _ = (t.to(self.device) for t in data.batch(rows))
        was_training = model.training
        model.eval()
        outputs, _ = model.greedy(src, lengths)
        model.train(was_training)
        lines = [f"--- step {step} ---"]
        for r, out in zip(rows, outputs):
            source, want = data.pairs[r]
            got = self.target.decode(out)
            lines.append(f"{source}  ->  {got}" + ("" if got == want else f"   (want {want})"))
        block = "\n".join(lines) + "\n"
        from tqdm import tqdm

        tqdm.write(block, file=sys.stderr)
        run.append("samples.txt", block)


def run_seq2seq(given: dict[str, Any]) -> dict[str, Any]:
    """Train an encoder-decoder; return the summary (also in ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults.

    Example:
        >>> s = run_seq2seq({"dataset": "addition", "digits": 2, "max_time": 60,
        ...                  "out": "/tmp/add2"})                        # doctest: +SKIP
        >>> s["test_exact"] > 0.9                                        # doctest: +SKIP
        True
    """
    return launch(settings_for(given, DEFAULTS), _run)


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    run, resume = open_run(s, "seq2seq", dist)
    train_settings = TrainSettings.from_dict(s)

    # everything that can fail on the user's input, before anything is written
    check_counts(s)
    seed_everything(s["seed"])
    if not s["tsv"] and not s["dataset"]:
        s["dataset"] = DEFAULT_DATASET
    pairs = load_pairs(s["dataset"], s["tsv"], digits=s["digits"], reverse=s["reverse"],
                       val_path=s["val"], test_path=s["test"], val_fraction=s["val_fraction"],
                       test_fraction=s["test_fraction"], seed=s["seed"], header=s.get("header"))
    if not pairs.val:  # the best checkpoint is chosen on them
        raise UserError("--val-fraction 0 leaves no validation pairs, and the best checkpoint "
                        "is chosen on them: give --val PATH or a --val-fraction above 0")
    if resume and (run.checkpoints / "vocab.json").is_file():
        source, target = load_vocabs(run.checkpoints)
    else:
        source = Vocab.build((p[0] for p in pairs.train), s["tokens"], "source",
                             s["vocab_size"])
        target = Vocab.build((p[1] for p in pairs.train), s["tokens"], "target",
                             s["vocab_size"])
    s["max_length"] = decoder_limit(pairs, target, s["max_length"])
    model = Seq2Seq(len(source), len(target), cell=s["cell"], embed=s["embed"],
                    hidden=s["hidden"], layers=s["layers"], bidirectional=s["bidirectional"],
                    residual=s["residual"], attention=s["attention"], dropout=s["dropout"],
                    max_length=s["max_length"], backend=s["backend"])
    own_dropout(dist, s["seed"])
    task = Seq2SeqTask(pairs, source, target, s, dist, device)

    write_run_files(run, resume, dist, {**s, "resume": None, "model": model.config},
                    lambda d: save_vocabs(d, source, target))
    extra = {"dataset": pairs.source, "split": pairs.split, "train_examples": len(pairs.train),
             "val_examples": len(pairs.val), "test_examples": len(pairs.test),
             "source_vocab": len(source), "target_vocab": len(target),
             "attention": s["attention"], "cell": s["cell"], "out": s["out"]}
    if dist.main and s.get("baseline", True):  # .get: a run resumed from before the flag
        extra.update(nearest_pair_scores(pairs, target))
    if dist.main:
        for note in pairs.notes:
            say(note)
        _announce(s, pairs, source, target, model, extra)
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    summary = trainer.fit()
    if dist.main and summary["status"] not in ("nonfinite", "interrupted") and pairs.val:
        from .plots import plot_attention

        examples = _attention_examples(trainer.model, task, "test" if pairs.test else "val")
        plot_attention(run.path / "attention.png", examples)
    return summary


def _announce(s: dict[str, Any], pairs: Pairs, source: Vocab, target: Vocab,
              model: nn.Module, extra: dict[str, Any]) -> None:
    """What the run trains on and with, and the baseline to beat (stderr)."""
    line = (f"{pairs.source}: {len(pairs.train):,} training pairs ({len(pairs.val):,} val, "
            f"{len(pairs.test):,} test, {pairs.split} split); {len(source)} source and "
            f"{len(target)} target tokens ({s['tokens']}); {describe(model.config)}; "
            f"{sum(p.numel() for p in model.parameters()):,} parameters")
    if "val_nearest_exact" in extra:
        line += (f"; nearest-training-pair baseline: val {extra['val_nearest_exact']:.1%} "
                 f"exact, {extra['val_nearest_accuracy']:.1%} of tokens")
    say(line)


# ---- the baseline -------------------------------------------------------------------------

def nearest_pair_scores(pairs: Pairs, target: Vocab, cap: int = NEAREST_CAP,
                        held_out: int = NEAREST_HELD_OUT) -> dict[str, float]:
    """Each held-out source's guess is the target of the most similar training source: the
    highest cosine of TF-IDF vectors of character 1-3-grams within words (scikit-learn), over
    at most ``cap`` training pairs, on at most ``held_out`` pairs of each split (fixed samples
    beyond). Scored as the network is (``match_scores``): ``val_/test_nearest_exact`` and
    ``_accuracy``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = _sample(pairs.train, cap)
    # case kept: a held-out source seen in training finds that very pair
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), lowercase=False,
                                 dtype=np.float32)
    known = vectorizer.fit_transform([s for s, _ in train])  # (pairs, n-grams), rows of norm 1
    out = {}
    for split in ("val", "test"):
        held = _sample(getattr(pairs, split), held_out)
        if not held:
            continue
        queries = vectorizer.transform([s for s, _ in held])
        nearest: list[int] = []
        for i in range(0, len(held), NEAREST_CHUNK):
            # sparse rows times dense columns: much faster than a sparse product this dense
            cosines = known @ queries[i:i + NEAREST_CHUNK].T.toarray()
            nearest += cosines.argmax(0).tolist()  # no shared n-gram: the first pair
        scores = match_scores([train[j][1] for j in nearest], [t for _, t in held], target)
        out.update({f"{split}_nearest_{k}": v for k, v in scores.items()})
    return out


def _sample(rows: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    return rows if len(rows) <= n else random.Random(0).sample(rows, n)


def match_scores(outputs: list[str], targets: list[str], vocab: Vocab) -> dict[str, float]:
    """``exact``: the share of outputs whose tokens are the target's; ``accuracy``: the share
    of target tokens and ``</s>`` that the output has at the same place (the network's token
    accuracy, for an output that does not see the target).

    Example:
        >>> v = Vocab.build(["abc"], "char")
        >>> match_scores(["abc", "abd"], ["abc", "abc"], v)
        {'exact': 0.5, 'accuracy': 0.875}
    """
    exact = right = tokens = 0
    for output, want in zip(outputs, targets):
        got, truth = vocab.split(output) + [None], vocab.split(want) + [None]  # None: </s>
        exact += got == truth
        right += sum(a == b for a, b in zip(got, truth))
        tokens += len(truth)
    return {"exact": exact / len(targets), "accuracy": right / tokens}


def decoder_limit(pairs: Pairs, target: Vocab, given: int | None) -> int:
    """The decoder's length limit (tokens, with ``</s>``): ``given``, which every target must
    fit, or half again the longest target's length."""
    longest, where = 0, None
    for split in ("train", "val", "test"):
        for i, (_, t) in enumerate(getattr(pairs, split)):
            n = len(target.split(t)) + 1
            if n > longest:
                longest, where = n, (split, i, t)
    if given is None:
        return max(8, math.ceil(1.5 * longest))
    if longest > given:
        split, i, t = where
        shown = t if len(t) <= 40 else t[:37] + "..."
        raise UserError(f"the target of {split} pair {i + 1} ({shown!r}) has {longest - 1} "
                        f"tokens, more than --max-length {given} allows with </s>: raise "
                        f"--max-length to at least {longest} or drop that pair")
    return given


def _attention_examples(model: nn.Module, task: Seq2SeqTask, split: str, n: int = 4
                        ) -> list[tuple[list[str], list[str], Tensor]]:
    """(source tokens, output tokens, attention) of the first ``n`` pairs of ``split``."""
    if task.s["attention"] == "none":
        return []
    data, out = task.data[split], []
    model.eval()
    for r in range(min(n, len(data))):
        src = torch.tensor(data.src[r], device=task.device)
        tokens, _ = model.greedy(src[:, None], torch.tensor([len(src)]))
        weights = model.attention_of(src, tokens[0]).cpu()
        out.append((task.source.split(data.pairs[r][0]),
                    task.target.decode_tokens(tokens[0]) + ["</s>"], weights))
    return out
