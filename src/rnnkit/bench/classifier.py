"""`rnnkit bench classifier`: the sentiment classifier against a plain PyTorch script, and deck
003's table (LSTM, bidirectional LSTM, GRU at hidden size 140) against TF-IDF + logistic
regression.

**Speed** (the default): rnnkit's ``SequenceClassifier`` with ``rnnkit train classifier``'s
defaults, against what a user writes from the PyTorch tutorials: ``nn.Embedding`` ->
``nn.LSTM`` over ``pack_padded_sequence`` -> the same readout -> ``nn.Linear``, with the same
sizes, dropout and parameter names. The plain model gets rnnkit's weights and the two must give
the same logits before anything is timed: the same model, only the implementation differs. Both
read the same tokenised batches (the Task's own: a seeded shuffle, similar lengths together),
in the same order. A step is forward, backward, clipping and AdamW's update (rnnkit: the
Trainer's fused AdamW; plain: AdamW's default), timed interleaved (``timing.compare``): the
ratio is rnnkit's examples/s over the script's, goal >= 1.0. Then both train for the same
number of epochs on the same split (rnnkit: ``run_classifier``, its schedule and best
checkpoint; plain: constant lr, the last epoch's model) and are scored on the same test rows.

**Table** (``--table``): ``run_classifier`` on ``--dataset sentiment`` (fixed 80/10/10 split,
fixed seed) for each of deck 003's models at hidden size 140 reading words (the deck's
dictionary), each for the same number of epochs (a budget that does not depend on the
machine's load), beside two TF-IDF + logistic-regression baselines of the same split (word
1-2-grams, character 1-4-grams): accuracy and macro-F1 on val and test. Goal: the best
recurrent model (chosen on validation) beats both baselines on test accuracy and macro-F1.

Example:
    rnnkit bench classifier --quick                        # a smoke run, seconds
    rnnkit bench classifier --epochs 3 --json speed.json   # speed, then 3 epochs each
    rnnkit bench classifier --table --json table.json      # 6 epochs each, word tokens
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import UserError
from .timing import compare, machine, write_json

GOAL = 1.0
TORCH_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}
# deck 003's table: (row name, settings)
DECK_MODELS = (("LSTM", {"cell": "lstm", "bidirectional": False}),
               ("bidirectional LSTM", {"cell": "lstm", "bidirectional": True}),
               ("GRU", {"cell": "gru", "bidirectional": False}))
DECK_HIDDEN = 140
# the table's own defaults: deck 003's models read words (its dictionary: 16,201 of them), and
# 6 epochs is where they beat the baselines (BENCHMARKS.md)
TABLE = {"epochs": 6, "model": {"hidden": DECK_HIDDEN, "tokenizer": "word"}}
MODEL_FLAGS = ("tokenizer", "vocab_size", "readout", "embed", "hidden", "dropout", "lr",
               "batch_size", "cell", "bidirectional")
METRICS = ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1")
FULL = {"pairs": 21, "epochs": 3, "max_rows": None}
# --quick: a tiny model on a few hundred rows, seconds (for the test)
QUICK = {"pairs": 3, "epochs": 1, "max_rows": 400, "batch_size": 32,
         "model": {"embed": 16, "hidden": 16, "vocab_size": 300, "max_length": 40}}


# ---- the plain PyTorch script -----------------------------------------------------------------
class PlainClassifier(nn.Module):
    """Embedding -> nn.LSTM/GRU/RNN over ``pack_padded_sequence`` -> readout -> Linear, as the
    PyTorch tutorials write it, with ``SequenceClassifier``'s parameter names (so its weights
    load either way). Time-major ``x`` (T, B) ids, ``lengths`` (B,).

    Example:
        >>> m = PlainClassifier(30, 3, embed=8, hidden=16).eval()
        >>> m(torch.randint(30, (9, 4)), torch.tensor([9, 5, 2, 7])).shape
        torch.Size([4, 3])
    """

    def __init__(self, vocab_size: int, num_classes: int, *, cell: str = "lstm",
                 embed: int = 128, hidden: int = 128, layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0, readout: str = "max"):
        super().__init__()
        self.readout, self.directions = readout, 2 if bidirectional else 1
        self.input = nn.Embedding(vocab_size, embed)
        kind = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
        self.rnn = TORCH_LAYERS[cell](embed, hidden, layers, bidirectional=bidirectional,
                                      dropout=dropout if layers > 1 else 0.0, **kind)
        width = hidden * self.directions
        if readout == "attention":
            self.score = nn.Linear(width, width)
            self.query = nn.Parameter(torch.randn(width) / width ** 0.5)
        self.drop = nn.Dropout(dropout)
        self.output = nn.Linear(width, num_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.drop(self.input(x)), lengths.cpu(),
                                      enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.readout == "last":  # h_n of the top layer, each direction
            h_n = state[0] if isinstance(state, tuple) else state
            r = torch.cat(list(h_n[-self.directions:]), -1)
        elif self.readout == "max":
            h, _ = pad_packed_sequence(out, padding_value=float("-inf"))
            r = h.amax(0)
        else:
            h, _ = pad_packed_sequence(out)  # padded steps are zeros
            if self.readout == "mean":
                r = h.sum(0) / lengths.to(h)[:, None]
            else:
                scores = torch.tanh(self.score(h)) @ self.query
                mask = torch.arange(h.shape[0], device=h.device)[:, None] < lengths.to(h.device)
                a = scores.masked_fill(~mask, float("-inf")).softmax(0)
                r = (a.unsqueeze(-1) * h).sum(0)
        return self.output(self.drop(r))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def plain_twin(model: nn.Module) -> PlainClassifier:
    """The plain script's model of ``model``'s (a ``SequenceClassifier``) settings, holding its
    weights."""
    c = model.config
    plain = PlainClassifier(c["vocab_size"], c["num_classes"], cell=c["cell"], embed=c["embed"],
                            hidden=c["hidden"], layers=c["layers"],
                            bidirectional=c["bidirectional"], dropout=c["dropout"],
                            readout=c["readout"]).to(next(model.parameters()).dtype)
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain


# ---- the data both read -----------------------------------------------------------------------
def prepare(s: dict[str, Any], max_rows: int | None = None):
    """The sentiment split, tokenizer and encoded splits, built as ``run_classifier`` builds
    them from the settings ``s`` (``max_rows``: a sample of that many rows of each split)."""
    from ..data.tokenizers import build_tokenizer
    from ..train.classifier import Encoded

    data = sentiment_split(s, max_rows)
    tokenizer = build_tokenizer(s["tokenizer"], "\n".join(t for t, _ in data.train),
                                s["vocab_size"])
    encoded = {split: Encoded.from_texts(getattr(data, split), tokenizer, data.classes,
                                         s["max_length"]) for split in ("train", "val", "test")}
    return data, tokenizer, encoded


def sentiment_split(s: dict[str, Any], max_rows: int | None = None):
    """The sentiment rows, split (the built-in's fixed split; ``max_rows``: a seeded sample of
    that many rows of each split, which are ordered by class)."""
    from ..data.labelled import load_labelled

    data = load_labelled("sentiment", seed=s["seed"])
    if max_rows:
        data.train, data.val, data.test = (random.Random(0).sample(rows, min(max_rows, len(rows)))
                                           for rows in (data.train, data.val, data.test))
    return data


def settings(given: dict[str, Any]) -> dict[str, Any]:
    """``run_classifier``'s resolved settings for ``given`` (rnnkit's defaults otherwise)."""
    from ..train.classifier import DEFAULTS
    from ..train.runs import settings_for

    return settings_for({"dataset": "sentiment", "progress": False, **given}, DEFAULTS)


def new_task(s: dict[str, Any], encoded, classes: list[str]):
    from ..train import distributed as D
    from ..train.classifier import ClassifierTask

    return ClassifierTask(encoded, classes, s, D.Dist(), torch.device("cpu"))


# ---- one training step of each ----------------------------------------------------------------
def rnnkit_step(model: nn.Module, task, s: dict[str, Any]):
    """rnnkit's training step as its Trainer runs it (the Task's batch and loss, fused AdamW,
    clipping; the schedule's lr update, a multiplication, left out), through the epochs."""
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"],
                            fused=True)
    n, box = task.batches_per_epoch(), {"i": 0}

    def step() -> float:
        epoch, index = divmod(box["i"], n)
        if index == 0:
            task.start_epoch(epoch)
        box["i"] += 1
        model.train()
        loss, _ = task.train_step(model, epoch, index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), s["clip"])
        opt.step()
        return float(loss.detach())

    return step


class PlainTrainer:
    """The plain loop over the same batches: pad, pack (in the model), cross-entropy, AdamW at
    rnnkit's lr and weight decay (constant: no schedule), clipping at rnnkit's norm."""

    def __init__(self, model: PlainClassifier, task, s: dict[str, Any]):
        self.model, self.task, self.clip = model, task, s["clip"]
        self.opt = torch.optim.AdamW(model.parameters(), lr=s["lr"],
                                     weight_decay=s["weight_decay"])
        self.n, self.i = task.batches_per_epoch(), 0

    def step(self) -> float:
        epoch, index = divmod(self.i, self.n)
        if index == 0:
            self.task.start_epoch(epoch)
        self.i += 1
        x, lengths, y = self.task.data["train"].batch(self.task.batches[index])
        self.model.train()
        loss = F.cross_entropy(self.model(x, lengths), y)
        self.opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        return float(loss.detach())

    def train_epochs(self, epochs: int) -> dict[str, float]:
        start, steps = time.perf_counter(), epochs * self.n
        while self.i < steps:
            self.step()
        seconds = time.perf_counter() - start
        rows = epochs * len(self.task.data["train"])
        return {"steps": steps, "train_seconds": seconds, "examples_per_second": rows / seconds}


def same_logits(model: nn.Module, plain: nn.Module, task) -> float:
    """The largest difference of the two models' logits on the first training batch, with
    gradients on (so rnnkit runs the engine it trains with), dropout off."""
    task.start_epoch(0)
    x, lengths, _ = task.data["train"].batch(task.batches[0])
    model.eval()
    plain.eval()
    return float((model(x, lengths) - plain(x, lengths)).detach().abs().max())


# ---- the speed benchmark ----------------------------------------------------------------------
def run_speed(quick: bool = False, epochs: int | None = None, seed: int = 0,
              given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time a step of each side by side, then train each for ``epochs`` and score the tests."""
    from ..models.classifier import SequenceClassifier
    from ..train.classifier import run_classifier

    cfg = QUICK if quick else FULL
    epochs = cfg["epochs"] if epochs is None else epochs
    base = {"seed": seed, **cfg.get("model", {}), **(given or {})}
    if "batch_size" in cfg:
        base.setdefault("batch_size", cfg["batch_size"])
    s = settings(base)
    t0 = time.perf_counter()
    data, tokenizer, encoded = prepare(s, cfg["max_rows"])
    classes = data.classes

    def models(backend: str = s["backend"]):
        torch.manual_seed(seed)
        ours = SequenceClassifier(tokenizer.vocab_size, len(classes), cell=s["cell"],
                                  embed=s["embed"], hidden=s["hidden"], layers=s["layers"],
                                  bidirectional=s["bidirectional"], dropout=s["dropout"],
                                  readout=s["readout"], backend=backend)
        return ours, plain_twin(ours)

    ours, plain = models()
    difference = same_logits(ours, plain, new_task(s, encoded, classes))
    if difference > 1e-4:
        raise RuntimeError(f"not the same model: logits differ by {difference}")
    # rnnkit on torch's kernel too (packed, as the script): what the engine adds, apart
    # from what the rest of the model (masks, readout, batches) costs
    on_kernel, _ = models("native")
    timing = compare({"plain": PlainTrainer(plain, new_task(s, encoded, classes), s).step,
                      "rnnkit": rnnkit_step(ours, new_task(s, encoded, classes), s),
                      "rnnkit_native": rnnkit_step(on_kernel, new_task(s, encoded, classes), s)},
                     pairs=cfg["pairs"], warmup=2, baseline="plain")
    ratio = timing["ratios"]["rnnkit"]
    B = s["batch_size"]

    # the same epochs of each, then the same test rows
    _, plain = models()
    plain_task = new_task(s, encoded, classes)
    plain_run = PlainTrainer(plain, plain_task, s).train_epochs(epochs)
    plain_scores = {f"{split}_{k}": v for split in ("val", "test")
                    for k, v in plain_task.evaluate(plain, split).items()
                    if k in ("accuracy", "macro_f1")}
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-classifier-") as work:
        given_run = {**base, "epochs": epochs, "out": str(Path(work) / "rnnkit"),
                     "baseline": True}
        if cfg["max_rows"]:  # the quick run's few rows: a CSV of them
            given_run.update(_quick_csv(data, Path(work)))
        summary = run_classifier({"dataset": "sentiment", "progress": False, **given_run})
    return {
        "benchmark": "classifier", "mode": "speed", "quick": quick, "machine": machine(),
        "settings": {k: s[k] for k in ("tokenizer", "cell", "embed", "hidden", "layers",
                                       "bidirectional", "readout", "dropout", "batch_size",
                                       "lr", "weight_decay", "clip", "max_length", "seed")},
        "train_examples": len(data.train), "vocab_size": tokenizer.vocab_size,
        "parameters": {"rnnkit": count_parameters(ours), "plain": count_parameters(plain)},
        "backend": ours.rnn.resolve_backend(torch.zeros(2, 2, s["embed"]), torch.tensor([2, 1])),
        "logit_difference": difference, "pairs": timing["pairs"],
        "step_seconds": timing["seconds"],
        "examples_per_second": {k: B / v for k, v in timing["seconds"].items()},
        "throughput_ratio": ratio, "native_ratio": timing["ratios"]["rnnkit_native"],
        "epochs": epochs,
        "rnnkit": {**{k: summary.get(k) for k in METRICS}, "steps": summary["steps"],
                   "train_seconds": summary["train_seconds"],
                   "examples_per_second": summary["examples_per_second"]},
        "plain": {**plain_scores, **plain_run},
        "baseline": {k: summary.get(k.replace("_", "_baseline_", 1)) for k in METRICS},
        "goals": {"throughput_at_least_1x": ratio >= GOAL,
                  "accuracy_not_lower": summary["test_accuracy"]
                  >= plain_scores["test_accuracy"]},
        "wall_seconds": time.perf_counter() - t0,
    }


def _quick_csv(data, work: Path) -> dict[str, Any]:
    """The quick run's rows as CSV files (``run_classifier`` reads a built-in whole)."""
    import csv

    given: dict[str, Any] = {"dataset": None}
    for split, flag in (("train", "csv"), ("val", "val"), ("test", "test")):
        path = work / f"{split}.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(getattr(data, split))
        given[flag] = str(path)
    return given


def speed_table(r: dict[str, Any]) -> str:
    s, eps = r["settings"], r["examples_per_second"]
    bi = "bidirectional " if s["bidirectional"] else ""
    lines = [f"sentiment classifier ({bi}{s['cell']} {s['hidden']}, {s['readout']} readout, "
             f"{s['tokenizer']} tokens, batch {s['batch_size']}; {r['parameters']['rnnkit']:,} "
             f"parameters each): rnnkit against a plain PyTorch script (nn.LSTM over "
             "pack_padded_sequence)",
             f"{'':<18} {'step ms':>8} {'rows/s':>8} {'ratio':>7}"]
    ratios = {"plain": 1.0, "rnnkit": r["throughput_ratio"], "rnnkit_native": r["native_ratio"]}
    for who, name in (("plain", "plain"), ("rnnkit", f"rnnkit ({r['backend']})"),
                      ("rnnkit_native", "rnnkit (native)")):
        lines.append(f"{name:<18} {1000 * r['step_seconds'][who]:>8.1f} {eps[who]:>8,.0f} "
                     f"{ratios[who]:>6.2f}x")
    lines.append(f"(interleaved, median of {r['pairs']}; ratio: rows/s over the script's; "
                 f"rnnkit ({r['backend']}): the engine auto picks for ragged batches; native: "
                 "torch's packed kernel under rnnkit's model)")
    lines += ["", f"after {r['epochs']} epoch{'s' * (r['epochs'] != 1)} on "
              f"{r['train_examples']:,} rows:",
              f"{'':<18} {'val acc':>8} {'val F1':>8} {'test acc':>8} {'test F1':>8}"]
    for who in ("rnnkit", "plain", "baseline"):
        m = r[who]
        name = "TF-IDF + LR" if who == "baseline" else who
        lines.append(f"{name:<18} " + " ".join(f"{_num(m.get(k)):>8}" for k in METRICS))
    if r["quick"]:
        lines.append("smoke run (--quick): a tiny model on a few rows, too small to judge the "
                     "goals; run `rnnkit bench classifier` for the verdict")
    else:
        lines += [f"{k.replace('_', ' ')}: {'met' if ok else 'MISSED'}"
                  for k, ok in r["goals"].items()]
    return "\n".join(lines)


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


# ---- deck 003's table -------------------------------------------------------------------------
def run_table(quick: bool = False, epochs: int | None = None, seed: int = 0,
              given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each of deck 003's models trained by ``run_classifier`` for ``epochs``, beside the
    TF-IDF + logistic-regression baselines (word 1-2-grams and character 1-4-grams) of the same
    split; ``given`` overrides rnnkit's defaults (tokenizer, readout, dropout ...)."""
    from ..train.classifier import baseline_scores, run_classifier

    cfg = QUICK if quick else {**FULL, **TABLE}
    epochs = cfg["epochs"] if epochs is None else epochs
    base = {"seed": seed, **TABLE["model"], **cfg.get("model", {}), **(given or {})}
    if "batch_size" in cfg:
        base.setdefault("batch_size", cfg["batch_size"])
    t0, rows = time.perf_counter(), []
    data = sentiment_split(settings(base), cfg["max_rows"])
    baselines = {name: {k: scores[k.replace("_", "_baseline_", 1)] for k in METRICS}
                 for name, kind in (("word", "word"), ("char", "char"))
                 for scores in [baseline_scores(data, kind, "none")]}
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-classifier-") as work:
        extra = _quick_csv(data, Path(work)) if cfg["max_rows"] else {}
        for name, model in DECK_MODELS:
            print(f"[bench classifier] {name}: {epochs} epochs", file=sys.stderr, flush=True)
            out = Path(work) / name.replace(" ", "-")
            summary = run_classifier({"dataset": "sentiment", "progress": False, **base,
                                      **model, **extra, "epochs": epochs, "out": str(out),
                                      "baseline": False})
            rows.append({"model": name, **model, "hidden": base["hidden"],
                         "parameters": summary["parameters"], "steps": summary["steps"],
                         "status": summary["status"],
                         "train_seconds": summary["train_seconds"],
                         "examples_per_second": summary["examples_per_second"],
                         **{k: summary[k] for k in METRICS}})
    best = max(rows, key=lambda r: r["val_accuracy"])  # chosen on validation, not test
    strongest = {k: max(b[k] for b in baselines.values()) for k in METRICS}
    s = settings(base)
    return {
        "benchmark": "classifier", "mode": "table", "quick": quick, "machine": machine(),
        "epochs": epochs, "seed": seed,
        "settings": {k: s[k] for k in ("tokenizer", "vocab_size", "embed", "hidden", "layers",
                                       "readout", "dropout", "batch_size", "lr", "max_length")},
        "rows": rows, "baselines": baselines, "best": best["model"],
        "goals": {"best_beats_baselines_test_accuracy":
                  best["test_accuracy"] > strongest["test_accuracy"],
                  "best_beats_baselines_test_macro_f1":
                  best["test_macro_f1"] > strongest["test_macro_f1"]},
        "wall_seconds": time.perf_counter() - t0,
    }



def deck_table(r: dict[str, Any]) -> str:
    s = r["settings"]
    lines = [f"deck 003's sentiment table: hidden {s['hidden']}, {s['tokenizer']} tokens, "
             f"{s['readout']} readout, dropout {s['dropout']}, {r['epochs']} "
             f"epoch{'s' * (r['epochs'] != 1)} each "
             f"(seed {r['seed']}, the fixed split)",
             f"{'model':<20} {'params':>9} {'val acc':>8} {'val F1':>8} {'test acc':>8} "
             f"{'test F1':>8} {'rows/s':>7}"]
    for row in r["rows"]:
        lines.append(f"{row['model']:<20} {row['parameters']:>9,} "
                     + " ".join(f"{row[k]:>8.3f}" for k in METRICS)
                     + f" {row['examples_per_second']:>7,.0f}")
    for name, b in r["baselines"].items():
        lines.append(f"{'TF-IDF + LR, ' + name:<20} {'-':>9} "
                     + " ".join(f"{b[k]:>8.3f}" for k in METRICS))
    if r["quick"]:
        lines.append("smoke run (--quick): a tiny model on a few rows, too small to judge the "
                     "goal; run `rnnkit bench classifier --table` for the verdict")
    else:
        lines.append(f"best on validation: {r['best']}; " + ", ".join(
            f"{k.replace('_', ' ')}: {'met' if ok else 'MISSED'}" for k, ok in r["goals"].items()))
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit bench classifier", description=__doc__.split("\n\n")[0],
        epilog="examples:\n  rnnkit bench classifier --quick\n"
        "  rnnkit bench classifier --epochs 3 --json speed.json\n"
        "  rnnkit bench classifier --table --json table.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="store_true", help="deck 003's table (LSTM, bidirectional "
                   "LSTM, GRU at hidden 140 against TF-IDF + LR) instead of the speed benchmark")
    p.add_argument("--quick", action="store_true", help="a tiny model on a few rows, seconds: "
                   "a smoke test, too small to judge the goals")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs of every model "
                   f"(default {FULL['epochs']}; --table: {TABLE['epochs']})")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("model settings (as for rnnkit train classifier; default: its "
                             "defaults; --table: word tokens, hidden 140)")
    g.add_argument("--tokenizer", choices=("bpe", "word", "char"))
    g.add_argument("--vocab-size", type=int, metavar="N")
    g.add_argument("--readout", choices=("last", "mean", "max", "attention"))
    g.add_argument("--embed", type=int, metavar="N")
    g.add_argument("--hidden", type=int, metavar="N")
    g.add_argument("--dropout", type=float, metavar="P")
    g.add_argument("--lr", type=float, metavar="X")
    g.add_argument("--batch-size", type=int, metavar="N")
    g.add_argument("--cell", help="speed benchmark only (lstm; gru and rnn_tanh too)")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                   help="speed benchmark only (on)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: "
                   "torch's choice)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    given = {k: v for k, v in vars(args).items()
             if v is not None and k in MODEL_FLAGS}
    if args.table:
        if "cell" in given or "bidirectional" in given:
            raise UserError("--table trains deck 003's three models (LSTM, bidirectional LSTM, "
                            "GRU): drop --cell and --bidirectional")
        result = run_table(args.quick, args.epochs, args.seed, given)
        print(deck_table(result))
    else:
        if given.get("cell", "lstm") not in TORCH_LAYERS:
            raise UserError(f"the plain script has torch's cells only: give --cell one of "
                            f"{', '.join(TORCH_LAYERS)}, not {given['cell']!r}")
        result = run_speed(args.quick, args.epochs, args.seed, given)
        print(speed_table(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
