"""Sequence classification (``rnnkit train classifier``): labelled texts, tokenizer, model, task.

The data are (text, label) rows: a built-in data set (``--dataset sentiment``, fixed split) or
the user's ``--csv PATH`` (``data.labelled``). The texts are cut into tokens by a tokenizer
trained on the training texts (``bpe`` by default: no token is ever unknown, a misspelt or
unseen word still falls into known pieces, and a tweet is under half as many steps as in
characters), at most ``max_length`` tokens each. Batches are drawn as seq2seq's are: a seeded
shuffle, rows of similar length together.

The loss is the cross-entropy of the labels (``--class-weights balanced``: each class weighted
by n / (classes x its count), so a rare class counts as much as a common one). Validation
scores the loss, the accuracy and the macro-F1; the best checkpoint is the one with the fewest
wrong labels (``error = 1 - accuracy``, what a user counts), the lower loss among equals (the
surer model); with balanced class weights, the one with the best macro-F1 (``f1_error``), the
metric that counts every class alike. At the end: the confusion matrix of the test rows
(``confusion.txt``, ``confusion.png``) and, beside the network, a TF-IDF + logistic-regression
baseline from scikit-learn on the same split (``*_baseline_*`` in the summary).

Scores instead of texts (``--dataset music-genre``, deck 000's genre from a score): each piece
is read as its binary piano roll (``data.music.piano_roll``: a row of 88 keys an eighth note,
the first ``--max-length`` rows), numeric features in through the model's linear input layer
(``SequenceClassifier(vocab_size=None, input_features=88)``), no tokenizer. Its baseline is a
logistic regression on what counting alone sees: each roll's pitch-class histogram and
polyphony counts (``data.music.baseline_features``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import music
from ..data.labelled import MUSIC_DATASET, Labelled, Row, load_labelled, load_music_genre
from ..data.tokenizers import Tokenizer, build_tokenizer
from ..data.vectors import pretrained_embedding, read_word2vec
from ..errors import UserError
from ..models.classifier import SequenceClassifier, describe
from . import distributed as D
from .checkpoint import atomic_write_bytes
from .config import check_counts
from .rundir import RunDir
from .runs import launch, open_run, own_dropout, say, settings_for, write_run_files
from .seq2seq import Seq2SeqTask
from .state import seed_everything
from .trainer import Trainer, TrainSettings

DEFAULT_DATASET = "sentiment"
EVAL_BATCH = 256

DEFAULTS: dict[str, Any] = {
    "task": "classifier",
    # data
    "dataset": None, "csv": None, "text_column": "text", "label_column": "label",
    "encoding": "utf-8", "val": None, "test": None, "val_fraction": 0.1, "test_fraction": 0.1,
    "tokenizer": "bpe", "vocab_size": None, "max_length": 400, "class_weights": "none",
    "baseline": True, "embeddings": None, "freeze_embeddings": False, "max_pieces": None,
    # model
    "cell": "lstm", "embed": 128, "hidden": 128, "layers": 1, "bidirectional": True,
    "readout": "max", "dropout": 0.3, "backend": "auto",
    # batches
    "batch_size": 64,
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": None, "epochs": None, "max_time": 240.0, "lr": 3e-3, "optimizer": "adamw",
    "weight_decay": 0.01, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 100, "min_lr_ratio": 0.1, "ema": 0.0, "patience": 0,
    "eval_every": None, "eval_examples": 10_000, "log_every": 10, "checkpoint_every": 100,
    "seed": 0, "device": "auto", "threads": None, "progress": True,
    # run directory
    "out": None, "resume": None,
}
CLASS_WEIGHTS = ("none", "balanced")
# --dataset music-genre: piano rolls, not texts; what a short budget on two cores trains well
MUSIC_DEFAULTS: dict[str, Any] = {
    "max_pieces": 200, "max_length": music.MAX_STEPS, "embed": 64, "hidden": 64,
    "batch_size": 32, "warmup": 20, "dropout": 0.2, "readout": "max", "tokenizer": None,
}


def pad(seqs: list[list[int]] | list[Tensor]) -> Tensor:
    """Token id lists as a time-major (T, B) tensor, or (T, F) feature tensors as (T, B, F),
    padded with zeros (the model reads each sequence's own length only)."""
    if seqs and isinstance(seqs[0], Tensor):
        return nn.utils.rnn.pad_sequence(seqs)
    out = torch.zeros(max(map(len, seqs)), len(seqs), dtype=torch.long)
    for b, s in enumerate(seqs):
        out[:len(s), b] = torch.tensor(s, dtype=torch.long)
    return out


class Encoded:
    """One split's sequences (token id lists, or (T, F) feature tensors) and class ids."""

    def __init__(self, src: list[list[int]] | list[Tensor], y: Tensor, truncated: int = 0):
        self.src, self.y, self.truncated = src, y, truncated

    @classmethod
    def from_texts(cls, rows: list[Row], tokenizer: Tokenizer, classes: list[str],
                   max_length: int) -> Encoded:
        """(text, label) rows as token ids, at most ``max_length`` a text."""
        index = {c: i for i, c in enumerate(classes)}
        ids = [tokenizer.encode(text) for text, _ in rows]
        return cls([s[:max_length] for s in ids],
                   torch.tensor([index[label] for _, label in rows], dtype=torch.long),
                   sum(len(s) > max_length for s in ids))

    @classmethod
    def from_rolls(cls, rows: list[Row], notes: dict[str, list[music.Note]],
                   classes: list[str], max_steps: int) -> Encoded:
        """(piece id, label) rows as piano rolls (T, 88) of their ``notes``, at most
        ``max_steps`` rows each."""
        index = {c: i for i, c in enumerate(classes)}
        full = [music.piano_roll(notes[piece], max_steps=None) for piece, _ in rows]
        return cls([r[:max_steps] for r in full],
                   torch.tensor([index[label] for _, label in rows], dtype=torch.long),
                   sum(len(r) > max_steps for r in full))

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(ids (T, B) or features (T, B, F), lengths (B,), labels (B,))."""
        src = [self.src[i] for i in rows]
        return pad(src), torch.tensor([len(s) for s in src]), self.y[rows]


class ClassifierTask:
    """Labelled sequences for the Trainer (see ``trainer.Task``)."""

    name, unit, monitor = "classifier", "examples", "error"
    tie_break = "loss"  # equal counts of wrong labels: keep the surer model
    # the batches are seq2seq's: a shuffle by seed and epoch, similar lengths together
    batches_per_epoch = Seq2SeqTask.batches_per_epoch
    start_epoch = Seq2SeqTask.start_epoch
    state_tensors = Seq2SeqTask.state_tensors
    load_state_tensors = Seq2SeqTask.load_state_tensors

    def __init__(self, data: dict[str, Encoded], classes: list[str], settings: dict[str, Any],
                 dist: D.Dist, device: torch.device):
        self.s, self.dist, self.device = settings, dist, device
        self.data, self.classes = data, classes  # data: "train", "val" and "test"
        if settings["class_weights"] == "balanced":  # rare classes count: keep the best F1
            self.monitor = "f1_error"
        weight = class_weights(self.data["train"].y, len(self.classes),
                               settings["class_weights"])
        self.weight = None if weight is None else weight.to(device)
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
        x, lengths, y = (t.to(self.device) for t in self.data["train"].batch(rows))
        loss = F.cross_entropy(model(x, lengths).float(), y, weight=self.weight)
        return loss, len(rows)

    @torch.no_grad()
    def logits(self, model: nn.Module, split: str, n: int | None = None) -> Tensor:
        """The logits (N, C) of the first ``n`` rows of ``split`` (all: None), in row order."""
        data = self.data[split]
        n = len(data) if n is None else min(n, len(data))
        was_training = model.training
        model.eval()
        out = torch.empty(n, len(self.classes))
        order = sorted(range(n), key=lambda r: len(data.src[r]))  # little padding
        for i in range(0, n, EVAL_BATCH):
            rows = order[i:i + EVAL_BATCH]
            x, lengths, _ = (t.to(self.device) for t in data.batch(rows))
            out[rows] = model(x, lengths).float().cpu()
        model.train(was_training)
        return out

    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Loss (unweighted cross-entropy), accuracy, macro-F1, ``error = 1 - accuracy`` (and
        ``f1_error = 1 - macro-F1`` when monitored); while training (not ``full``) the first
        ``eval_examples`` rows only."""
        if not len(self.data[split]):
            return {}
        n = None if full or not self.s["eval_examples"] else self.s["eval_examples"]
        logits = self.logits(model, split, n)
        y = self.data[split].y[:len(logits)]
        scores = classification_scores(y, logits.argmax(-1), len(self.classes))
        out = {"loss": float(F.cross_entropy(logits, y)), **scores,
               "error": 1 - scores["accuracy"]}
        if self.monitor == "f1_error":
            out["f1_error"] = 1 - scores["macro_f1"]
        return out

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        pass


def class_weights(y: Tensor, num_classes: int, kind: str) -> Tensor | None:
    """``balanced``: n / (C x n_c) for each class c (sklearn's), an absent class 0; ``none``:
    None (every example counts once)."""
    if kind not in CLASS_WEIGHTS:
        raise UserError(f"unknown --class-weights {kind!r}; choose {' or '.join(CLASS_WEIGHTS)}")
    if kind == "none":
        return None
    counts = torch.bincount(y, minlength=num_classes).double()
    return torch.where(counts > 0, len(y) / (num_classes * counts.clamp(min=1)), 0.0).float()


# ---- metrics ------------------------------------------------------------------------------

def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Tensor:
    """M[i, j]: how many rows of true class i were predicted as class j.

    Example:
        >>> confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]), 3)
        tensor([[1, 1, 0],
                [0, 1, 0],
                [0, 0, 1]])
    """
    flat = torch.as_tensor(y_true) * num_classes + torch.as_tensor(y_pred)
    return torch.bincount(flat, minlength=num_classes ** 2).view(num_classes, num_classes)


def classification_scores(y_true: Tensor, y_pred: Tensor, num_classes: int
                          ) -> dict[str, float]:
    """Accuracy and macro-F1: the mean over classes of F1 = 2TP / (2TP + FP + FN), over the
    classes that occur among the true or the predicted labels (as sklearn's
    ``f1_score(average="macro")``).

    Example:
        >>> classification_scores(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), 2)
        {'accuracy': 0.75, 'macro_f1': 0.7333333333333334}
    """
    m = confusion_matrix(y_true, y_pred, num_classes).double()
    tp, truth, predicted = m.diag(), m.sum(1), m.sum(0)
    seen = (truth + predicted) > 0
    f1 = 2 * tp[seen] / (truth + predicted)[seen]
    return {"accuracy": float(tp.sum() / m.sum()), "macro_f1": float(f1.mean())}


def confusion_text(m: Tensor, classes: list[str], title: str) -> str:
    """The matrix as a table (rows: true class, columns: predicted), with each class's
    precision, recall and F1."""
    width = max(8, *(len(c) for c in classes), len(str(int(m.max()))) + 1)
    lines = [title, "rows: true label, columns: predicted label", "",
             " " * width + "".join(f" {c:>{width}}" for c in classes)]
    lines += [f"{c:<{width}}" + "".join(f" {int(v):>{width}}" for v in row)
              for c, row in zip(classes, m.tolist())]
    lines += ["", f"{'':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'rows':>9}"]
    tp, truth, predicted = m.diag().double(), m.sum(1).double(), m.sum(0).double()
    for i, c in enumerate(classes):
        p = tp[i] / predicted[i] if predicted[i] else 0.0
        r = tp[i] / truth[i] if truth[i] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        lines.append(f"{c:<{width}} {float(p):>9.3f} {float(r):>9.3f} {float(f):>9.3f} "
                     f"{int(truth[i]):>9}")
    return "\n".join(lines) + "\n"


def plot_confusion(path, m: Tensor, classes: list[str], title: str) -> None:
    """The confusion matrix as a heatmap with its counts (rows normalised for the colour)."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    share = (m.double() / m.sum(1, keepdim=True).clamp(min=1)).numpy()
    size = 1.6 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in zip(((i, j) for i in range(len(classes)) for j in range(len(classes))),
                             m.flatten().tolist()):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true label's rows")
    _save(fig, path)


def music_baseline_scores(data: dict[str, Encoded], classes: list[str], class_weights: str
                          ) -> dict[str, float]:
    """Logistic regression (scikit-learn, standardised inputs) on each piano roll's
    pitch-class histogram and polyphony counts (``data.music.baseline_features``), on the same
    split and rolls as the network; ``val_/test_baseline_accuracy`` and ``_macro_f1``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(split: str) -> Any:
        return torch.stack([music.baseline_features(r) for r in data[split].src]).numpy()

    model = make_pipeline(StandardScaler(), LogisticRegression(
        max_iter=2000, class_weight=None if class_weights == "none" else "balanced"))
    model.fit(features("train"), data["train"].y.numpy())
    out = {}
    for split in ("val", "test"):
        if len(data[split]):
            predicted = torch.as_tensor(model.predict(features(split)))
            scores = classification_scores(data[split].y, predicted, len(classes))
            out.update({f"{split}_baseline_{k}": v for k, v in scores.items()})
    return out


def baseline_scores(data: Labelled, tokenizer: str, class_weights: str) -> dict[str, float]:
    """TF-IDF + logistic regression (scikit-learn) on the same split: word 1-2-grams for word
    tokens, character 1-4-grams within words otherwise; ``val_/test_baseline_accuracy`` and
    ``_macro_f1``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = (TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) if tokenizer == "word"
                  else TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True))
    index = {c: i for i, c in enumerate(data.classes)}
    X = vectorizer.fit_transform([t for t, _ in data.train])
    model = LogisticRegression(max_iter=1000, class_weight=None if class_weights == "none"
                               else "balanced")
    model.fit(X, [index[label] for _, label in data.train])
    out = {}
    for split in ("val", "test"):
        rows = getattr(data, split)
        if rows:
            predicted = torch.as_tensor(model.predict(vectorizer.transform([t for t, _ in rows])))
            truth = torch.tensor([index[label] for _, label in rows])
            scores = classification_scores(truth, predicted, len(data.classes))
            out.update({f"{split}_baseline_{k}": v for k, v in scores.items()})
    return out


# ---- the run ------------------------------------------------------------------------------

def run_classifier(given: dict[str, Any]) -> dict[str, Any]:
    """Train a sequence classifier; return the summary (also in ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults.

    Example:
        >>> s = run_classifier({"dataset": "sentiment", "out": "/tmp/sent"})  # doctest: +SKIP
        >>> s["test_accuracy"] > s["test_baseline_accuracy"]                   # doctest: +SKIP
        True
    """
    music_run = given.get("dataset") == MUSIC_DATASET and not given.get("csv")
    return launch(settings_for(given, {**DEFAULTS, **MUSIC_DEFAULTS} if music_run else DEFAULTS),
                  _run)


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    run, resume = open_run(s, "classifier", dist)
    train_settings = TrainSettings.from_dict(s)

    # everything that can fail on the user's input, before anything is written
    seed_everything(s["seed"])
    check_counts(s)
    if not s["csv"] and not s["dataset"]:
        s["dataset"] = DEFAULT_DATASET
    if s["max_length"] is not None and s["max_length"] < 1:
        raise UserError(f"--max-length must be a positive number of tokens, got "
                        f"{s['max_length']}")
    if s["dataset"] == MUSIC_DATASET and not s["csv"]:
        return _run_music(s, dist, device, run, resume, train_settings)
    if s["max_pieces"] is not None:
        raise UserError(f"--max-pieces goes with --dataset {MUSIC_DATASET}; drop it")
    data = load_labelled(s["dataset"], s["csv"], text_column=s["text_column"],
                         label_column=s["label_column"], encoding=s["encoding"],
                         val_path=s["val"], test_path=s["test"], val_fraction=s["val_fraction"],
                         test_fraction=s["test_fraction"], seed=s["seed"])
    if resume and (run.checkpoints / "tokenizer.json").is_file():
        tokenizer = Tokenizer.load(run.checkpoints)
    else:
        tokenizer = build_tokenizer(s["tokenizer"], "\n".join(t for t, _ in data.train),
                                    s["vocab_size"])
    vectors = pretrained(s, tokenizer) if s["embeddings"] and not resume else None
    model = SequenceClassifier(tokenizer.vocab_size, len(data.classes), cell=s["cell"],
                               embed=s["embed"], hidden=s["hidden"], layers=s["layers"],
                               bidirectional=s["bidirectional"], dropout=s["dropout"],
                               readout=s["readout"], freeze_embedding=s["freeze_embeddings"],
                               backend=s["backend"])
    coverage = None
    if vectors is not None:
        weights, coverage = pretrained_embedding(tokenizer.vocab, *vectors,
                                                 model.input.weight.detach())
        model.input.weight.data.copy_(weights)
    own_dropout(dist, s["seed"])
    encoded = {split: Encoded.from_texts(getattr(data, split), tokenizer, data.classes,
                                         s["max_length"]) for split in ("train", "val", "test")}
    task = ClassifierTask(encoded, data.classes, s, dist, device)

    write_run_files(run, resume, dist, {**s, "resume": None, "classes": data.classes,
                                        "model": model.config}, tokenizer.save)
    extra: dict[str, Any] = {
        "dataset": data.source, "split": data.split, "classes": data.classes,
        "train_examples": len(data.train), "val_examples": len(data.val),
        "test_examples": len(data.test), "vocab_size": tokenizer.vocab_size,
        "truncated_examples": sum(d.truncated for d in task.data.values()),
        "tokenizer": s["tokenizer"], "cell": s["cell"], "readout": s["readout"],
        "text_column": s["text_column"], "out": s["out"]}
    if coverage is not None:
        extra["embeddings_coverage"] = coverage
    if dist.main and s["baseline"]:
        extra.update(baseline_scores(data, s["tokenizer"], s["class_weights"]))
    if dist.main:
        _announce(s, data, tokenizer, model, extra)
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    summary = trainer.fit()
    if dist.main and summary["status"] not in ("nonfinite", "interrupted"):
        write_confusion(run, task, trainer.model)
    return summary


def _run_music(s: dict[str, Any], dist: D.Dist, device: torch.device, run: RunDir,
               resume: bool, train_settings: TrainSettings) -> dict[str, Any]:
    """``--dataset music-genre``: piano rolls in, a genre out (see the module doc)."""
    if s["val"] or s["test"]:
        raise UserError("--val/--test go with --csv; the built-in music-genre has its own "
                        "fixed validation and test pieces")
    if s["embeddings"]:
        raise UserError("--embeddings holds word vectors for texts; music-genre reads piano "
                        "rolls: drop --embeddings")
    pieces = MUSIC_DEFAULTS["max_pieces"] if s["max_pieces"] is None else s["max_pieces"]
    data = load_music_genre(pieces,
                            progress=say if dist.main else None)
    if data.skipped and dist.main:
        say(f"music-genre: {data.skipped} corpus pieces music21 cannot read were skipped")
    model = SequenceClassifier(None, len(data.classes), input_features=music.HIGH - music.LOW + 1,
                               cell=s["cell"], embed=s["embed"], hidden=s["hidden"],
                               layers=s["layers"], bidirectional=s["bidirectional"],
                               dropout=s["dropout"], readout=s["readout"], backend=s["backend"])
    own_dropout(dist, s["seed"])
    encoded = {split: Encoded.from_rolls(getattr(data, split), data.notes, data.classes,
                                         s["max_length"]) for split in ("train", "val", "test")}
    task = ClassifierTask(encoded, data.classes, s, dist, device)
    roll = {"step": music.STEP, "low": music.LOW, "high": music.HIGH,
            "max_steps": s["max_length"]}

    write_run_files(run, resume, dist, {**s, "resume": None, "classes": data.classes,
                                        "model": model.config, "input": "piano-roll",
                                        "roll": roll})
    extra: dict[str, Any] = {
        "dataset": data.source, "split": data.split, "classes": data.classes,
        "train_examples": len(data.train), "val_examples": len(data.val),
        "test_examples": len(data.test), "skipped_pieces": data.skipped,
        "truncated_examples": sum(d.truncated for d in task.data.values()),
        "input": "piano-roll", "cell": s["cell"], "readout": s["readout"], "out": s["out"]}
    if dist.main and s["baseline"]:
        extra.update(music_baseline_scores(encoded, data.classes, s["class_weights"]))
    if dist.main:
        counts = ", ".join(f"{c} {sum(label == c for _, label in data.train)}"
                           for c in data.classes)
        line = (f"music-genre: {len(data.train)} training pieces ({counts}; {len(data.val)} "
                f"val, {len(data.test)} test, fixed split); piano rolls of "
                f"{model.config['input_features']} keys an eighth note, the first "
                f"{s['max_length']} steps; "
                f"{describe(model.config)}; {sum(p.numel() for p in model.parameters()):,} "
                "parameters")
        if "val_baseline_accuracy" in extra:
            line += (f"; pitch-class + polyphony logistic-regression baseline: val accuracy "
                     f"{extra['val_baseline_accuracy']:.3f}")
        say(line)
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    summary = trainer.fit()
    if dist.main and summary["status"] not in ("nonfinite", "interrupted"):
        write_confusion(run, task, trainer.model)
    return summary


def _announce(s: dict[str, Any], data: Labelled, tokenizer: Tokenizer, model: nn.Module,
              extra: dict[str, Any]) -> None:
    """What the run trains on and with, and the baseline to beat (stderr)."""
    counts = ", ".join(f"{c} {sum(label == c for _, label in data.train):,}"
                       for c in data.classes)
    line = (f"{data.source}: {len(data.train):,} training rows ({counts}; "
            f"{len(data.val):,} val, {len(data.test):,} test, {data.split} split); "
            f"{tokenizer.vocab_size:,} {s['tokenizer']} tokens; {describe(model.config)}; "
            f"{sum(p.numel() for p in model.parameters()):,} parameters")
    if "val_baseline_accuracy" in extra:
        line += (f"; TF-IDF + logistic regression baseline: val accuracy "
                 f"{extra['val_baseline_accuracy']:.3f}, macro-F1 "
                 f"{extra['val_baseline_macro_f1']:.3f}")
    say(line)
    if "embeddings_coverage" in extra:
        say(f"{s['embeddings']}: vectors of {s['embed']} numbers for "
            f"{extra['embeddings_coverage']:.0%} of the {tokenizer.vocab_size:,} word tokens "
            f"({'frozen' if s['freeze_embeddings'] else 'fine-tuned'}; the rest start random)")
    if extra["truncated_examples"]:
        say(f"{extra['truncated_examples']:,} texts are longer than --max-length "
            f"{s['max_length']} tokens: the model reads their first {s['max_length']}")


def pretrained(s: dict[str, Any], tokenizer: Tokenizer) -> tuple[list[str], Tensor]:
    """The ``--embeddings`` file's vectors of the tokenizer's words; sets ``s["embed"]`` to
    their size."""
    if s["tokenizer"] != "word":
        raise UserError(f"--embeddings holds word vectors: use them with --tokenizer word, not "
                        f"{s['tokenizer']}")
    words = {t.strip().lower() for t in tokenizer.vocab}  # the reader also folds case
    found, vectors = read_word2vec(s["embeddings"], keep=words)
    if not found:
        raise UserError(f"{s['embeddings']} has a vector for none of the training texts' words; "
                        "give vectors of their language, or drop --embeddings")
    s["embed"] = vectors.shape[1]
    return found, vectors


def write_confusion(run: RunDir, task: ClassifierTask, model: nn.Module) -> None:
    """``confusion.txt`` and ``confusion.png`` of the test rows (the validation rows when
    there are no test rows)."""
    split = "test" if len(task.data["test"]) else "val"
    predicted = task.logits(model, split).argmax(-1)
    m = confusion_matrix(task.data[split].y, predicted, len(task.classes))
    title = f"confusion matrix, {split} rows ({len(predicted):,})"
    atomic_write_bytes(run.file("confusion.txt"), confusion_text(m, task.classes, title).encode())
    plot_confusion(run.file("confusion.png"), m, task.classes, title)
