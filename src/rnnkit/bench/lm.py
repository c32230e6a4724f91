"""`rnnkit bench lm`: rnnkit's language model against a plain PyTorch script.

For each cell (LSTM, GRU, vanilla tanh RNN), on the same corpus split (the default built-in
corpus, character tokenizer) and the SAME wall-clock budget:

* **rnnkit**: ``run_lm`` with rnnkit's defaults (AdamW with weight decay, lr warmup, clipping,
  dropout, the best validation checkpoint kept), only the cell, the corpus and the time set.
  The time is its only budget, so the cosine schedule follows the clock (seconds spent over
  seconds given, the trainer's rule for a time budget);
* **plain**: what a user writes from the PyTorch examples: ``nn.Embedding`` -> ``nn.LSTM`` /
  ``nn.GRU`` / ``nn.RNN`` -> ``nn.Linear``, stateful truncated BPTT as in PyTorch's
  word_language_model example, Adam at a constant lr of 2e-3 (char-rnn's), gradient clipping
  at 5 (char-rnn's), no schedule, no dropout, no weight tying; the same embedding and hidden
  sizes, batch size and BPTT length as rnnkit's run, so the parameter count and the work per
  token are rnnkit's (when rnnkit ties weights, the untied plain model is resized to the same
  count, within ``PARAM_TOLERANCE``).

Both are then scored with the same function (``models.scoring.score``: every validation
character predicted, state carried) on the same validation text, beside the 5-gram
Kneser-Ney baseline (``models.ngram.CharNGram``) fitted on the training text.

Throughput is reported two ways: each run's own training tokens/s (time inside training steps),
and a side-by-side measurement of one training step of each (``timing.compare``: interleaved,
median of >= 9 rounds), the ratio the ">= 1.0x" throughput goal is read from.

rnnkit's goals, per cell (``targets``): a lower validation bpc than the plain script in the same
time, a training step at least as fast (>= 1.0x), and both models far below the n-gram's bpc.

Example:
    rnnkit bench lm --quick --json /tmp/bench-lm.json
    rnnkit bench lm --max-time 240 --json bench-lm.json      # about 30 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DEFAULT_DATASET, build_tokenizer, load_corpus, split_corpus
from ..errors import UserError
from ..models.ngram import CharNGram
from ..models.scoring import score
from .timing import compare, machine, write_json

CELLS = ("lstm", "gru", "rnn_tanh")
TORCH_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}
PARAM_TOLERANCE = 0.03  # the plain model's parameter count within 3 % of rnnkit's
PLAIN_LR, PLAIN_CLIP = 2e-3, 5.0
NGRAM_ORDER = 5

FULL = {"max_chars": 2_000_000, "max_time": 240.0, "pairs": 9}
# --quick: a tiny model on a small text, a few seconds per model (for the test)
QUICK = {"max_chars": 40_000, "max_time": 1.5, "pairs": 9,
         "model": {"hidden": 32, "embed": 16, "layers": 1},
         "train": {"batch_size": 8, "seq_len": 32}}


# ---- the plain PyTorch script -----------------------------------------------------------------
class PlainLM(nn.Module):
    """Embedding -> nn.LSTM/GRU/RNN -> Linear, time-major, as the PyTorch examples write it."""

    def __init__(self, cell: str, vocab_size: int, embed: int, hidden: int, layers: int,
                 device: str | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed, device=device)
        kind = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
        self.rnn = TORCH_LAYERS[cell](embed, hidden, layers, device=device, **kind)
        self.head = nn.Linear(hidden, vocab_size, device=device)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embedding(x), state)
        return self.head(out), state


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def plain_size(cell: str, vocab_size: int, layers: int, target: int) -> tuple[int, int]:
    """(embed, hidden) of the plain model whose parameter count is nearest ``target``, with
    embed = hidden as a plain script writes it (sized on the meta device: nothing allocated).

    Example:
        >>> e, h = plain_size("lstm", 100, 1, 300_000)
        >>> n = count_parameters(PlainLM("lstm", 100, e, h, 1))
        >>> abs(n - 300_000) / 300_000 < 0.03
        True
    """
    def params(h: int) -> int:
        return count_parameters(PlainLM(cell, vocab_size, h, h, layers, device="meta"))

    lo, hi = 1, 8
    while params(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # params grows with h: bisect to the first h reaching the target
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params(mid) < target else (lo, mid)
    h = min((lo, hi), key=lambda h: abs(params(h) - target))
    return h, h


def stream_rows(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(L, B): the ids cut into ``batch_size`` contiguous columns (the example's batchify)."""
    n = len(ids) // batch_size
    return ids[: n * batch_size].view(batch_size, n).t().contiguous()


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class PlainTrainer:
    """The plain loop: stateful truncated BPTT over contiguous columns, Adam, clipping."""

    def __init__(self, model: PlainLM, train_ids: torch.Tensor, batch_size: int, bptt: int):
        self.model, self.bptt = model, bptt
        self.data = stream_rows(train_ids, batch_size)
        self.opt = torch.optim.Adam(model.parameters(), lr=PLAIN_LR)
        self.loss_fn = nn.CrossEntropyLoss()
        self.i, self.state = 0, None

    def step(self) -> int:
        """One training step; returns the tokens it trained on."""
        if self.i + 1 >= len(self.data):  # a new epoch: back to the start, fresh state
            self.i, self.state = 0, None
        T = min(self.bptt, len(self.data) - 1 - self.i)
        x, y = self.data[self.i:self.i + T], self.data[self.i + 1:self.i + 1 + T]
        self.i += T
        self.model.train()
        logits, state = self.model(x, self.state)
        self.state = detach(state)
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), PLAIN_CLIP)
        self.opt.step()
        return y.numel()

    def train_for(self, seconds: float) -> dict[str, float]:
        start, step_seconds, tokens, steps = time.perf_counter(), 0.0, 0, 0
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            tokens += self.step()
            step_seconds += time.perf_counter() - t0
            steps += 1
        return {"steps": steps, "tokens": tokens, "train_seconds": time.perf_counter() - start,
                "tokens_per_second": tokens / max(step_seconds, 1e-9)}


# ---- rnnkit -----------------------------------------------------------------------------------
def rnnkit_settings(cell: str, cfg: dict[str, Any], train_chars: int) -> dict[str, Any]:
    """``run_lm``'s resolved settings: rnnkit's defaults (sized for ``train_chars`` training
    characters, as ``run_lm`` sizes them), only the corpus, cell, seed (and in --quick a tiny
    model) set here."""
    from ..train.config import resolve
    from ..train.lm import BATCH_SIZE, DEFAULTS
    from ..train.sizing import fill_sizes

    given = {"dataset": cfg["dataset"], "max_chars": cfg["max_chars"], "tokenizer": "char",
             "cell": cell, "seed": cfg["seed"], "progress": False, **cfg.get("model", {}),
             **cfg.get("train", {})}
    s = resolve(DEFAULTS, given)
    fill_sizes(s, train_chars)
    s["batch_size"] = s["batch_size"] or BATCH_SIZE  # given to run_lm: both trainers share it
    return s


def rnnkit_model(s: dict[str, Any], vocab_size: int) -> nn.Module:
    from ..models.language_model import LanguageModel

    return LanguageModel(vocab_size, cell=s["cell"], embed=s["embed"], hidden=s["hidden"],
                         layers=s["layers"], dropout=s["dropout"], tie_weights=s["tie_weights"],
                         backend=s["backend"])


def rnnkit_step(s: dict[str, Any], model: nn.Module, train_ids: torch.Tensor):
    """One of rnnkit's training steps as its Trainer runs it (its stateful batches, AdamW,
    clipping; the schedule's lr update, a multiplication, is left out), for the timing."""
    from ..data import StreamBatches
    from ..models.language_model import detach_state

    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"],
                            fused=True)
    batches = StreamBatches(train_ids, s["batch_size"], s["seq_len"])
    box = {"i": 0, "state": None}

    def step() -> None:
        x, y = batches.batch(box["i"] % len(batches))
        box["i"] += 1
        model.train()
        logits, state = model(x, box["state"])
        box["state"] = detach_state(state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                           y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), s["clip"])
        opt.step()

    return step


# ---- one cell, both contenders ---------------------------------------------------------------
def bench_cell(cell: str, cfg: dict[str, Any], split: tuple[str, str], tok,
               workdir: Path) -> dict[str, Any]:
    """Time one step of each side by side (fresh models); train rnnkit (``run_lm``, the time
    its only budget), then the plain script, for the same time; score both."""
    from ..train.checkpoint import load_run
    from ..train.lm import run_lm

    train_text, val_text = split
    s = rnnkit_settings(cell, cfg, len(train_text))
    ids = torch.tensor(tok.encode(train_text))
    torch.manual_seed(cfg["seed"])
    r_model = rnnkit_model(s, tok.vocab_size)
    target = count_parameters(r_model)
    if s["tie_weights"]:  # the plain model has no tying: give it the same count, untied
        embed, hidden = plain_size(cell, tok.vocab_size, s["layers"], target)
    else:  # the same shape: equal parameters and equal work per token
        embed, hidden = s["embed"], s["hidden"]

    def new_plain() -> PlainTrainer:
        torch.manual_seed(cfg["seed"])
        plain = PlainLM(cell, tok.vocab_size, embed, hidden, s["layers"])
        return PlainTrainer(plain, ids, s["batch_size"], s["seq_len"])

    timing = compare({"rnnkit": rnnkit_step(s, r_model, ids), "plain": new_plain().step},
                     pairs=cfg["pairs"], warmup=2, baseline="plain")

    out = workdir / f"rnnkit-{cell}"
    given = {k: s[k] for k in ("dataset", "max_chars", "tokenizer", "cell", "seed", "progress",
                               "embed", "hidden", "layers", "dropout", "batch_size", "seq_len")}
    # the time is the only budget (no step count), the same for both
    summary = run_lm({**given, "steps": None, "max_time": cfg["max_time"], "out": str(out)})
    run = load_run(out)
    trainer = new_plain()
    plain_run = trainer.train_for(cfg["max_time"])
    r_score = score(run.model, run.tokenizer, val_text)
    p_score = score(trainer.model, tok, val_text)
    return {
        "cell": cell,
        "rnnkit": {"parameters": target, "val_bpc": r_score["bpc"],
                   "val_bpc_own": summary.get("val_bpc"), "steps": summary["steps"],
                   "train_seconds": summary["train_seconds"],
                   "tokens_per_second": summary["tokens_per_second"],
                   "status": summary["status"],
                   "model": {k: s[k] for k in ("embed", "hidden", "layers", "dropout",
                                               "tie_weights", "lr", "weight_decay", "clip",
                                               "schedule", "batch_size", "seq_len")}},
        "plain": {"parameters": count_parameters(trainer.model), "val_bpc": p_score["bpc"],
                  "steps": plain_run["steps"], "train_seconds": plain_run["train_seconds"],
                  "tokens_per_second": plain_run["tokens_per_second"],
                  "model": {"embed": embed, "hidden": hidden, "layers": s["layers"]}},
        "step_seconds": timing["seconds"],
        "throughput_ratio": timing["ratios"]["rnnkit"],  # rnnkit steps/s over plain's
    }


# ---- the whole benchmark ----------------------------------------------------------------------
def run_bench(quick: bool = False, max_time: float | None = None,
              max_chars: int | None = None, cells: tuple[str, ...] = CELLS,
              seed: int = 0) -> dict[str, Any]:
    cfg = dict(QUICK if quick else FULL)
    cfg.update({"dataset": DEFAULT_DATASET, "seed": seed})
    if max_time is not None:
        cfg["max_time"] = max_time
    if max_chars is not None:
        cfg["max_chars"] = max_chars
    text = load_corpus(cfg["dataset"], max_chars=cfg["max_chars"])
    train_text, val_text, _ = split_corpus(text)  # run_lm's default fractions: the same split
    tok = build_tokenizer("char", train_text)  # as run_lm builds it
    t0 = time.perf_counter()
    ngram = CharNGram(NGRAM_ORDER).fit(train_text)
    ngram_bpc = ngram.bits_per_char(val_text)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-lm-") as work:
        for cell in cells:
            print(f"[bench lm] {cell}: training rnnkit and plain, {cfg['max_time']:g} s each",
                  file=sys.stderr, flush=True)
            rows.append(bench_cell(cell, cfg, (train_text, val_text), tok, Path(work)))
    return {
        "benchmark": "lm", "quick": quick, "machine": machine(),
        "corpus": {"dataset": cfg["dataset"], "max_chars": cfg["max_chars"],
                   "train_chars": len(train_text), "val_chars": len(val_text)},
        "max_time": cfg["max_time"], "pairs": cfg["pairs"],
        "plain_recipe": {"optimizer": "adam", "lr": PLAIN_LR, "clip": PLAIN_CLIP,
                         "schedule": None, "dropout": 0.0, "tie_weights": False},
        "ngram": {"order": NGRAM_ORDER, "val_bpc": ngram_bpc},
        "cells": rows, "wall_seconds": time.perf_counter() - t0,
        "targets": targets(rows, ngram_bpc),
    }


def targets(rows: list[dict[str, Any]], ngram_bpc: float) -> dict[str, dict[str, bool]]:
    """rnnkit's goals per cell: lower BPC than plain, throughput >= 1.0x, both far (here: at
    least 10 %) below the n-gram's BPC."""
    out = {}
    for r in rows:
        rb, pb = r["rnnkit"]["val_bpc"], r["plain"]["val_bpc"]
        out[r["cell"]] = {"lower_bpc_than_plain": rb < pb,
                          "throughput_at_least_1x": r["throughput_ratio"] >= 1.0,
                          "both_below_ngram": max(rb, pb) < 0.9 * ngram_bpc}
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{'cell':<9} {'model':<7} {'params':>9} {'val bpc':>8} {'steps':>7} "
             f"{'tok/s':>9} {'step ratio':>10}"]
    for r in result["cells"]:
        for who in ("rnnkit", "plain"):
            m = r[who]
            ratio = f"{r['throughput_ratio']:.2f}x" if who == "rnnkit" else "1.00x"
            lines.append(f"{r['cell']:<9} {who:<7} {m['parameters']:>9,} {m['val_bpc']:>8.3f} "
                         f"{m['steps']:>7} {m['tokens_per_second']:>9,.0f} {ratio:>10}")
    lines.append(f"{NGRAM_ORDER}-gram KN{'':<8} {'-':>9} {result['ngram']['val_bpc']:>8.3f}")
    c = result["corpus"]
    lines.append(f"(same {result['max_time']:g} s per model; {c['dataset']}, "
                 f"{c['train_chars']:,} train / {c['val_chars']:,} val chars; step ratio: "
                 f"rnnkit steps/s over plain's, interleaved median of {result['pairs']})")
    if result.get("quick"):  # seconds of a tiny model: nothing to conclude from its numbers
        lines.append("smoke run (--quick): a tiny model for seconds, too small to judge the "
                     "performance goals; run `rnnkit bench lm` for the verdict")
        return "\n".join(lines)
    for cell, t in result["targets"].items():
        missed = [k for k, ok in t.items() if not ok]
        lines.append(f"{cell}: " + ("all performance goals met" if not missed else
                                    "goals missed: " + ", ".join(missed)))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit bench lm", description=__doc__.split("\n\n")[0],
        epilog="example:\n  rnnkit bench lm --quick --json /tmp/bench-lm.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny model, seconds per model: a "
                   "smoke test, too small to judge the performance goals")
    p.add_argument("--max-time", type=float, default=None,
                   help=f"training seconds per model (default {FULL['max_time']:g})")
    p.add_argument("--max-chars", type=int, default=None,
                   help=f"characters of the corpus (default {FULL['max_chars']:,})")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for every model (default: torch's, one per core); "
                   "on a machine other jobs share, 1 avoids the threads' barrier stalls")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    unknown = [c for c in cells if c not in CELLS]
    if unknown or not cells:
        raise UserError(f"--cells takes some of {', '.join(CELLS)}, got {args.cells!r}")
    if args.max_time is not None and not (args.max_time > 0 and math.isfinite(args.max_time)):
        raise UserError(f"--max-time must be a positive number of seconds, got {args.max_time}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = run_bench(args.quick, args.max_time, args.max_chars, cells, args.seed)
    print(table(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
