"""Generation from one input (``rnnkit train generator``): a language model started by a label.

The data are (text, label) rows, the classifier's (``data.labelled``: ``--dataset sentiment``,
fixed split, or ``--csv PATH`` with its ``--val``/``--test`` files or stratified fractions).
Each text is one line (a line break inside it becomes a space) and is modelled between two
end-of-text tokens (the newline): from the label's initial state (``models.conditioned``) the
model reads the end token, then predicts every token of the text and the end token after it.

The tokenizer is ``char`` by default: a tweet is short, so its few hundred steps cost little;
no word of a user's text is ever unknown; the samples can spell anything, hashtags and
handles included; and bits per character need no conversion. ``word`` and ``bpe`` work too.

Validation scores the loss (nats per predicted token) and the bits per character (total nats
over the texts' characters, each text's end counted as one character), the best checkpoint is
the one with the lowest loss. At the end, per label, ``*_bpc_label_NAME``; and on every test
text (validation text when there are no test rows) the check that the label matters: its bits
per character under its own label and under the other labels (``test_own_label_bpc``,
``test_wrong_label_bpc``, the mean over the wrong ones), and how often its own label is the one
under which it is most probable (``test_label_accuracy``: the model used as a generative
classifier, uniform prior). ``samples.txt`` holds a
few samples per label.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.labelled import MUSIC_DATASET, Labelled, Row, load_labelled, load_music_genre
from ..data.tokenizers import NoteTokenizer, Tokenizer, build_tokenizer
from ..errors import UserError
from ..generation import Codec, Generator, end_id
from ..models.conditioned import ConditionedLM
from . import distributed as D
from .checkpoint import atomic_write_bytes
from .closing import note_warnings
from .config import REGULARISERS, check_counts, regularisers
from .rundir import RunDir
from .runs import launch, open_run, own_dropout, say, settings_for, write_run_files
from .seq2seq import Seq2SeqTask
from .sizing import chosen_lines, fill_sizes, fit_to_budget, median_step_seconds
from .state import seed_everything
from .trainer import Trainer, TrainSettings

DEFAULT_DATASET = "sentiment"
NGRAM_ORDER = 5  # the baseline: what counting character 5-grams predicts, no label
MUSIC_PIECES = 200  # --dataset music-genre: pieces a genre (the classifier's default)
EVAL_BATCH = 256
# A batch of texts holds about as many tokens as the language model's (32 x 128): long texts
# come fewer to a batch, so a short budget still buys its steps (``batch_rows``).
BATCH_TOKENS = 4096
BATCH_ROWS = (8, 64)  # the fewest and most texts a batch
IGNORE = -100  # a padded target: no loss

DEFAULTS: dict[str, Any] = {
    "task": "generator",
    # data
    "dataset": None, "csv": None, "text_column": "text", "label_column": "label",
    "encoding": "utf-8", "val": None, "test": None, "val_fraction": 0.1, "test_fraction": 0.1,
    "tokenizer": "char", "vocab_size": None, "max_length": 400, "max_pieces": None,
    # model
    "cell": "lstm", "embed": None, "hidden": None, "layers": 1, "dropout": None,
    "every_step": True, "backend": "auto", **REGULARISERS,
    # batches (None: about BATCH_TOKENS tokens of text a batch)
    "batch_size": None,
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": None, "epochs": None, "max_time": 240.0, "lr": None, "optimizer": "adamw",
    "weight_decay": 0.01, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 100, "min_lr_ratio": 0.1, "ema": 0.0, "patience": 0,
    "eval_every": None, "eval_examples": 1000, "log_every": 10, "checkpoint_every": 100,
    "seed": 0, "device": "auto", "threads": None, "progress": True,
    # samples
    "samples_per_label": 3, "sample_length": 280, "temperature": 0.8,
    # run directory
    "out": None, "resume": None,
}


def one_line(text: str) -> str:
    """The text as one line: line breaks (and the spaces around them) become one space.

    Example:
        >>> one_line("good morning \\n  world")
        'good morning world'
    """
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


class Encoded:
    """One split's texts as token ids between end tokens, their label ids and characters."""

    def __init__(self, seqs: list[list[int]], y: Tensor, chars: list[int], truncated: int = 0):
        self.seqs, self.y, self.chars, self.truncated = seqs, y, chars, truncated
        self.src = seqs  # Seq2SeqTask's batching sorts by len(src)

    @classmethod
    def from_rows(cls, rows: list[Row], codec: Codec, labels: list[str], max_length: int
                  ) -> Encoded:
        """``[end, *ids, end]`` per text, at most ``max_length`` tokens of it (a text cut
        short has no end token: it does not end there)."""
        index, end = {c: i for i, c in enumerate(labels)}, end_id(codec)
        seqs, chars, truncated = [], [], 0
        for text, _ in rows:
            ids = codec.encode(text)
            if len(ids) > max_length:
                truncated += 1
                ids = ids[:max_length]
                seqs.append([end, *ids])
                chars.append(len(codec.decode(ids)))
            else:
                seqs.append([end, *ids, end])
                chars.append(len(text) + 1)  # the end of the text counts as one character
        return cls(seqs, torch.tensor([index[label] for _, label in rows], dtype=torch.long),
                   chars, truncated)

    def __len__(self) -> int:
        return len(self.seqs)

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(inputs (T, B), targets (T, B), padded with IGNORE; labels (B,))."""
        seqs = [self.seqs[i] for i in rows]
        T = max(len(s) for s in seqs) - 1
        x = torch.zeros(T, len(seqs), dtype=torch.long)
        t = torch.full((T, len(seqs)), IGNORE, dtype=torch.long)
        for b, s in enumerate(seqs):
            x[:len(s) - 1, b] = torch.tensor(s[:-1])
            t[:len(s) - 1, b] = torch.tensor(s[1:])
        return x, t, self.y[rows]


class GeneratorTask:
    """Labelled texts for the Trainer (see ``trainer.Task``): next-token loss from the label's
    initial state."""

    name, unit, monitor = "generator", "tokens", "loss"
    # the batches are seq2seq's: a shuffle by seed and epoch, similar lengths together
    batches_per_epoch = Seq2SeqTask.batches_per_epoch
    start_epoch = Seq2SeqTask.start_epoch
    state_tensors = Seq2SeqTask.state_tensors
    load_state_tensors = Seq2SeqTask.load_state_tensors

    def __init__(self, data: dict[str, Encoded], labels: list[str], settings: dict[str, Any],
                 dist: D.Dist, device: torch.device):
        self.s, self.dist, self.device = settings, dist, device
        self.data, self.labels = data, labels  # data: "train", "val" and "test"
        B = settings["batch_size"]
        if B % dist.world:
            raise UserError(f"--batch-size {B} is the global batch: it must divide evenly over "
                            f"the {dist.world} processes; use a multiple of {dist.world}")
        self.local = slice(dist.rank * B // dist.world, (dist.rank + 1) * B // dist.world)
        self.batches: list[list[int]] = []

    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        if not self.batches:
            self.start_epoch(epoch)  # a resumed run starts mid-epoch
        rows = self.batches[index][self.local]
        x, t, y = (v.to(self.device) for v in self.data["train"].batch(rows))
        logits, _ = model(x, labels=y)
        loss = F.cross_entropy(logits.float().flatten(0, 1), t.flatten(), ignore_index=IGNORE)
        return loss, int((t != IGNORE).sum())

    @torch.no_grad()
    def nats(self, model: nn.Module, split: str, labels: Tensor | None = None,
             n: int | None = None) -> Tensor:
        """-ln p(text | label) of the first ``n`` texts of ``split`` (all: None), each under
        ``labels`` (default: its own), in row order."""
        data = self.data[split]
        n = len(data) if n is None else min(n, len(data))
        labels = data.y[:n] if labels is None else labels
        was_training = model.training
        model.eval()
        out = torch.empty(n, dtype=torch.float64)
        order = sorted(range(n), key=lambda r: len(data.seqs[r]))  # little padding
        for i in range(0, n, EVAL_BATCH):
            rows = order[i:i + EVAL_BATCH]
            x, t, _ = data.batch(rows)
            logits, _ = model(x.to(self.device), labels=labels[rows].to(self.device))
            loss = F.cross_entropy(logits.float().permute(1, 2, 0), t.T.to(self.device),
                                   ignore_index=IGNORE, reduction="none")  # (B, T)
            out[rows] = loss.sum(1).double().cpu()
        model.train(was_training)
        return out

    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Loss and bpc under the texts' own labels; ``full``: also per label, and own against
        wrong labels (see the module doc); while training the first ``eval_examples`` texts."""
        data = self.data[split]
        if not len(data):
            return {}
        n = None if full or not self.s["eval_examples"] else self.s["eval_examples"]
        y = data.y if n is None else data.y[:n]
        check = full and split == self.checked_split()
        if check:  # each text under each label (N, K); its own label's column is the score
            under = torch.stack([self.nats(model, split, torch.full_like(y, k))
                                 for k in range(len(self.labels))], 1)
            own = under.gather(1, y[:, None])[:, 0]
        else:
            own = self.nats(model, split, n=n)
        tokens = torch.tensor([len(s) - 1 for s in data.seqs[:len(own)]], dtype=torch.float64)
        chars = torch.tensor(data.chars[:len(own)], dtype=torch.float64)
        out = {"loss": float(own.sum() / tokens.sum()), "bpc": bits(own, chars)}
        if full:
            for k, label in enumerate(self.labels):
                mine = y == k
                if mine.any():
                    out[f"bpc_label_{label}"] = bits(own[mine], chars[mine])
        if check:
            out.update(label_check(under, y, chars))
        return out

    def checked_split(self) -> str:
        """Where the final scores compare own and wrong labels: the test texts (K passes
        over them), the validation texts when there are none."""
        return "test" if len(self.data["test"]) else "val"

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        pass


def label_check(under: Tensor, y: Tensor, chars: Tensor) -> dict[str, float]:
    """From each text's nats under each label (N, K) and its own label ``y``: the bpc under
    the own label, under the wrong ones (the mean of their nats), and the share of texts whose
    own label is the likeliest (the model as a classifier by Bayes' rule, uniform prior).

    Example:
        >>> under = torch.tensor([[10.0, 30.0, 20.0], [40.0, 10.0, 5.0]])
        >>> r = label_check(under, torch.tensor([0, 1]), torch.tensor([10.0, 10.0]))
        >>> round(r["own_label_bpc"] * math.log(2), 3), r["label_accuracy"]
        (1.0, 0.5)
        >>> round(r["wrong_label_bpc"] * math.log(2), 3)   # ((30 + 20) / 2 + (40 + 5) / 2) / 20
        2.375
    """
    own = under.gather(1, y[:, None])[:, 0]
    wrong = (under.sum(1) - own) / (under.shape[1] - 1)
    return {"own_label_bpc": bits(own, chars), "wrong_label_bpc": bits(wrong, chars),
            "label_accuracy": float((under.argmin(1) == y).double().mean())}


def bits(nats: Tensor, chars: Tensor) -> float:
    """Bits per character of texts with these total nats and characters."""
    return float(nats.sum() / chars.sum() / math.log(2))


# ---- the run ------------------------------------------------------------------------------

def run_generator(given: dict[str, Any]) -> dict[str, Any]:
    """Train a label-conditioned language model; return the summary (also in
    ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults.

    Example:
        >>> s = run_generator({"dataset": "sentiment", "out": "/tmp/gen"})   # doctest: +SKIP
        >>> s["test_own_label_bpc"] < s["test_wrong_label_bpc"]               # doctest: +SKIP
        True
    """
    return launch(settings_for(given, DEFAULTS), _run)


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    run, resume = open_run(s, "generator", dist)
    TrainSettings.from_dict({**s, "lr": 1.0 if s["lr"] is None else s["lr"]})  # fail early

    # everything that can fail on the user's input, before anything is written
    seed_everything(s["seed"])
    check_counts(s)
    if not s["csv"] and not s["dataset"]:
        s["dataset"] = DEFAULT_DATASET
    for name in ("max_length", "samples_per_label", "sample_length"):
        if not isinstance(s[name], int) or s[name] < (1 if name == "max_length" else 0):
            raise UserError(f"--{name.replace('_', '-')} must be a whole number "
                            f"{'>= 1' if name == 'max_length' else '>= 0'}, got {s[name]!r}")
    data = _labelled(s)
    if resume and (run.checkpoints / "tokenizer.json").is_file():
        tokenizer = Tokenizer.load(run.checkpoints)
    else:  # texts one a line: the newline is in the vocabulary, the end-of-text token
        train_text = "".join(t + "\n" for t, _ in data.train)
        tokenizer = (NoteTokenizer.train(train_text, s["vocab_size"]) if s["tokenizer"] == "notes"
                     else build_tokenizer(s["tokenizer"], train_text, s["vocab_size"]))
    encoded = {split: Encoded.from_rows(getattr(data, split), tokenizer, data.classes,
                                        s["max_length"]) for split in ("train", "val", "test")}
    train_chars = sum(encoded["train"].chars)
    sized = fill_sizes(s, train_chars)  # a resumed run has its sizes already
    if s["batch_size"] is None:
        s["batch_size"] = batch_rows(encoded["train"], dist.world)
        sized.append("batch_size")
    budget = fit_to_budget(s, sized, lambda w: seconds_per_step(
        s, tokenizer.vocab_size, len(data.classes), encoded["train"], w, device),
        device, dist.world)
    model = ConditionedLM(tokenizer.vocab_size, num_labels=len(data.classes), cell=s["cell"],
                          embed=s["embed"], hidden=s["hidden"], layers=s["layers"],
                          dropout=s["dropout"], every_step=s["every_step"],
                          backend=s["backend"], **regularisers(s))
    own_dropout(dist, s["seed"])
    task = GeneratorTask(encoded, data.classes, s, dist, device)

    write_run_files(run, resume, dist, {
        **s, "resume": None, "labels": data.classes, "model": model.config,
        "sized_from_text": {"train_chars": train_chars, "settings": sized,
                            **({"budget": budget} if budget else {})}}, tokenizer.save)
    extra: dict[str, Any] = {
        "dataset": data.source, "split": data.split, "labels": data.classes,
        "train_examples": len(data.train), "val_examples": len(data.val),
        "test_examples": len(data.test), "train_chars": train_chars,
        "vocab_size": tokenizer.vocab_size,
        "truncated_examples": sum(d.truncated for d in task.data.values()),
        "tokenizer": s["tokenizer"], "cell": s["cell"], "every_step": s["every_step"],
        "out": s["out"]}
    if dist.main:
        extra.update(ngram_baseline(data, s["max_length"] if s["tokenizer"] == "char" else None))
        _announce(s, data, tokenizer, model, extra)
        for line in chosen_lines(s, sized, budget):
            say(line)
    # the settings as fit_to_budget left them (its learning rate too)
    trainer = Trainer(model, task, TrainSettings.from_dict(s), run, dist, device,
                      summary_extra=extra)
    summary = trainer.fit()
    if dist.main and summary["status"] not in ("nonfinite", "interrupted") \
            and s["samples_per_label"]:
        gen = Generator(trainer.model.cpu().eval(), tokenizer, data.classes, s)
        summary.update(write_samples(run, gen, s))
        run.write_json("summary.json", summary)
    note_warnings(run, summary, s, order=NGRAM_ORDER, text="texts")  # as train lm closes
    return summary


def batch_rows(train: Encoded, processes: int = 1) -> int:
    """Texts a batch: about ``BATCH_TOKENS`` tokens of the training texts' mean length, within
    ``BATCH_ROWS``, a multiple of the processes.

    Example:
        >>> batch_rows(Encoded([[0] * 101] * 10, torch.zeros(10), [100] * 10))
        41
    """
    mean = sum(len(seq) - 1 for seq in train.seqs) / max(1, len(train))
    rows = min(max(round(BATCH_TOKENS / max(mean, 1)), BATCH_ROWS[0]), BATCH_ROWS[1])
    return max(processes, rows // processes * processes)


def seconds_per_step(s: dict[str, Any], vocab: int, labels: int, train: Encoded, hidden: int,
                     device: torch.device, steps: int = 4) -> float:
    """A training step's seconds (forward, backward, AdamW) for the run's model at width
    ``hidden`` on random tokens of a batch of mean-length training texts: the median after a
    first step that pays for warming up."""
    model = ConditionedLM(vocab, num_labels=labels, cell=s["cell"], embed=s["embed"],
                          hidden=hidden, layers=s["layers"], dropout=s["dropout"],
                          every_step=s["every_step"], backend=s["backend"],
                          **regularisers(s)).to(device)
    length = round(sum(len(seq) for seq in train.seqs) / max(1, len(train)))
    x = torch.randint(vocab, (max(2, length), s["batch_size"]), device=device)
    y = torch.randint(labels, (s["batch_size"],), device=device)

    def loss() -> torch.Tensor:
        logits, _ = model(x[:-1], labels=y)
        return F.cross_entropy(logits.flatten(0, 1).float(), x[1:].flatten())

    return median_step_seconds(model, loss, device, steps)


def _labelled(s: dict[str, Any]) -> Labelled:
    """The run's (text, label) rows: a built-in data set or ``--csv``; ``--dataset
    music-genre``: each piece's melody as note-event words (its tokenizer ``notes``)."""
    if s["dataset"] == MUSIC_DATASET and not s["csv"]:
        if s["tokenizer"] not in ("char", "notes") or s["vocab_size"] is not None:
            raise UserError(f"--dataset {MUSIC_DATASET} reads note events, its own vocabulary: "
                            "drop --tokenizer and --vocab-size")
        s["tokenizer"] = "notes"
        pieces = MUSIC_PIECES if s["max_pieces"] is None else s["max_pieces"]
        if not isinstance(pieces, int) or pieces < 1:
            raise UserError(f"--max-pieces must be a whole number >= 1, got {pieces!r}")
        from ..data import music

        d = load_music_genre(pieces)
        rows = {name: [(music.events_text(d.notes[piece]), genre) for piece, genre in part]
                for name, part in (("train", d.train), ("val", d.val), ("test", d.test))}
        return Labelled(rows["train"], rows["val"], rows["test"], d.classes, d.source, d.split)
    if s["max_pieces"] is not None:
        raise UserError(f"--max-pieces goes with --dataset {MUSIC_DATASET}; drop it")
    return _one_line(load_labelled(
        s["dataset"], s["csv"], text_column=s["text_column"], label_column=s["label_column"],
        encoding=s["encoding"], val_path=s["val"], test_path=s["test"],
        val_fraction=s["val_fraction"], test_fraction=s["test_fraction"], seed=s["seed"]))


def _one_line(data: Labelled) -> Labelled:
    """The rows with each text on one line (an empty text stays out: nothing to model)."""
    def rows(part: list[Row]) -> list[Row]:
        return [(one_line(t), label) for t, label in part if one_line(t)]
    return Labelled(rows(data.train), rows(data.val), rows(data.test), data.classes,
                    data.source, data.split)


def ngram_baseline(data: Labelled, max_chars: int | None = None, order: int = NGRAM_ORDER
                   ) -> dict[str, float]:
    """What counting alone predicts, the label unused: a character ``order``-gram (interpolated
    Kneser-Ney, ``models.ngram``) fitted on the training texts, each text followed by its end
    (a newline), its bits per character on the held-out texts scored the same way as the
    network's (``val_/test_ngram_bpc``; each text's first ``max_chars`` characters, what a
    ``char`` run models of it). A network below it has learnt more than character counts.

    Example:
        >>> d = Labelled([("abcabc", "x"), ("abcab", "y")] * 20, [("abcabc", "x")],
        ...              [], ["x", "y"], "t", "fraction")
        >>> b = ngram_baseline(d)
        >>> b["val_ngram_bpc"] < 1.5, "test_ngram_bpc" in b   # a uniform guess: 2 bits
        (True, False)
    """
    from ..models.ngram import CharNGram

    def joined(rows: list[Row]) -> str:
        return "".join(t[:max_chars] + "\n" for t, _ in rows)

    train = joined(data.train)
    if not train.strip():
        return {}
    ngram = CharNGram(order).fit(train)
    return {f"{split}_ngram_bpc": ngram.bits_per_char(joined(rows), prefix="\n")
            for split, rows in (("val", data.val), ("test", data.test)) if rows}


def _announce(s: dict[str, Any], data: Labelled, tokenizer: Tokenizer, model: nn.Module,
              extra: dict[str, Any] | None = None) -> None:
    """What the run trains on and with, and the baseline to beat (stderr)."""
    counts = ", ".join(f"{c} {sum(label == c for _, label in data.train):,}"
                       for c in data.classes)
    c = model.config
    say(f"{data.source}: {len(data.train):,} training texts ({counts}; {len(data.val):,} val, "
        f"{len(data.test):,} test, {data.split} split); {tokenizer.vocab_size:,} "
        f"{s['tokenizer']} tokens; {c['cell']} {c['layers']}x{c['hidden']} started by the "
        f"label{' and fed it at every step' if c['every_step'] else ''}; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters"
        + (f"; character {NGRAM_ORDER}-gram baseline (no label): val bpc "
           f"{extra['val_ngram_bpc']:.3f}" if extra and "val_ngram_bpc" in extra else ""))


def write_samples(run: RunDir, gen: Generator, s: dict[str, Any]) -> dict[str, Any]:
    """``samples.txt``: ``samples_per_label`` texts for each label (seeded by the run's seed);
    returns the summary's note of them."""
    lines, first = [], {}
    for k, label in enumerate(gen.labels):
        texts = gen.samples(label, s["samples_per_label"], length=s["sample_length"],
                            temperature=s["temperature"], seed=s["seed"] * 1_000_003 + k)
        first[f"sample_label_{label}"] = texts[0]
        lines += [f"--- {label} ---", *texts, ""]
    atomic_write_bytes(run.file("samples.txt"), "\n".join(lines).encode("utf-8"))
    return {"samples": str(run.file("samples.txt")), "samples_per_label": s["samples_per_label"],
            "sample_temperature": s["temperature"], **first}
