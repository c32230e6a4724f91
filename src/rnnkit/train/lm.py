"""Language-model training (``rnnkit train lm``): corpus, tokenizer, model, the LM task.

Stateful (default, deck 003): the training tokens are cut into ``batch_size`` contiguous rows
(``StreamBatches``) read ``seq_len`` steps at a time; the hidden state is carried from one batch
to the next and detached between them: truncated backpropagation through time. Stateless
(``--stateless``, deck 001): independent shuffled windows (``WindowBatches``), each from a zero
state. Validation scores the whole split as one stream, as ``rnnkit evaluate`` does
(``models.scoring``): loss per token, perplexity, and bits per character (total nats over
characters, whatever the tokenizer). Beside it: the smoothed character 5-gram baseline.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import (
    DEFAULT_DATASET,
    IGNORE_INDEX,
    StreamBatches,
    TextSplits,
    Tokenizer,
    WindowBatches,
    build_tokenizer,
    count_chars,
    load_splits,
)
from ..errors import UserError
from ..models.generate import generate, start_token_id
from ..models.language_model import LanguageModel, detach_state
from ..models.ngram import CharNGram
from ..models.scoring import total_nats
from . import distributed as D
from .closing import closing_warnings as closing_warnings  # re-exported: its first home
from .closing import note_warnings
from .config import REGULARISERS, regularisers
from .rundir import RunDir
from .runs import launch, open_run, own_dropout, say, settings_for, write_run_files
from .sizing import (
    SMALL_TEXT_BATCH,
    TIERS,
    chosen_lines,
    fill_sizes,
    fit_to_budget,
    median_step_seconds,
)
from .state import seed_everything
from .trainer import Trainer, TrainSettings

# The main job (`rnnkit train`): a character LSTM on the Python standard library's source that
# ends in about ten minutes: the budget is 570 s of training (the schedule follows the clock),
# plus corpus, baseline and final evaluation. ``None``: hidden, embed, dropout and lr are chosen
# from the size of the training text (``sizing``); evaluation points from the budget (Trainer).
DEFAULTS: dict[str, Any] = {
    "task": "lm",
    # data
    "dataset": None, "text": None, "val": None, "test": None, "max_chars": 2_000_000,
    "val_fraction": 0.05, "test_fraction": 0.05, "tokenizer": "char", "vocab_size": None,
    # model
    "cell": "lstm", "embed": None, "hidden": None, "layers": 1, "dropout": None,
    "tie_weights": False, "backend": "auto", "embeddings": None, "freeze_embeddings": False,
    "embed_dropout": 0.0, **REGULARISERS,
    # batches
    "batch_size": None, "seq_len": 128, "stateless": False,  # None: BATCH_SIZE (fewer: sizing)
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": None, "epochs": None, "max_time": 570.0, "lr": None, "optimizer": "adamw",
    "weight_decay": None, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 100, "min_lr_ratio": 0.1, "ema": 0.998, "patience": 0,
    "eval_every": None, "eval_tokens": 50_000, "log_every": 10, "checkpoint_every": 50,
    "seed": 0, "device": "auto",
    "threads": None, "progress": True,
    # samples and baseline
    "prime": "", "sample_length": 300, "temperature": 0.8, "ngram_order": 5,
    # run directory
    "out": None, "resume": None,
}


BATCH_SIZE = 32  # rows a step, unless --max-time takes sizing.SMALL_TEXT_BATCH (more updates)
# ... on texts below the main job's tier only: its 1.8 M characters in 570 s on a slow CPU
# ended at val bpc 2.080 at 8 rows, 1.995 at 32 rows and hidden 384 (BENCHMARKS.md)
SMALL_BATCH_BELOW = TIERS[-2][0]  # the main job's tier starts here


class LMTask:
    """Next-token prediction on a token stream, for the Trainer (see ``trainer.Task``)."""

    name, unit, monitor = "lm", "tokens", "loss"

    def __init__(self, tokenizer: Tokenizer, train: str, val: str, test: str,
                 settings: dict[str, Any], dist: D.Dist, device: torch.device):
        self.tok, self.s, self.dist, self.device = tokenizer, settings, dist, device
        B, T = settings["batch_size"], settings["seq_len"]
        if B % dist.world:
            raise UserError(f"--batch-size {B} is the global batch: it must divide evenly over "
                            f"the {dist.world} processes; use a multiple of {dist.world}")
        self.local = slice(dist.rank * B // dist.world, (dist.rank + 1) * B // dist.world)
        ids = torch.tensor(tokenizer.encode(train), dtype=torch.long)
        if T >= len(ids):
            raise UserError(f"--seq-len {T} is longer than the training text ({len(ids)} "
                            f"tokens); lower --seq-len below {len(ids)} or give more text")
        self.stateful = not settings["stateless"]
        if self.stateful:
            self.batches = StreamBatches(ids, B, T)
        else:
            self.batches = WindowBatches(ids, B, T, seed=settings["seed"],
                                         drop_last=dist.active)
        self.texts = {"val": val, "test": test}
        self.ids = {k: tokenizer.encode(v) for k, v in self.texts.items()}
        self._prefixes: dict[tuple[str, int], str] = {}
        self.state: Tensor | tuple[Tensor, ...] | None = None

    def batches_per_epoch(self) -> int:
        return len(self.batches)

    def start_epoch(self, epoch: int) -> None:
        self.state = None  # the streams start again from their beginning

    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        if self.stateful:
            x, y = self.batches.batch(index)
        else:
            x, y = self.batches.batch(index, epoch)
        x, y = x[:, self.local].to(self.device), y[:, self.local].to(self.device)
        logits, state = model(x, self.state if self.stateful else None)
        if self.stateful:
            self.state = detach_state(state)  # truncated BPTT: gradients stop here
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        return loss, int((y != IGNORE_INDEX).sum())

    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Loss, perplexity and bits per character of ``split``; not ``full`` (the periodic
        evaluation while training): its first ``eval_tokens`` tokens only, so that a large
        validation text does not eat the time budget (the final scores read all of it)."""
        ids, text = self.ids[split], self.texts[split]
        cap = self.s.get("eval_tokens", DEFAULTS["eval_tokens"])
        if not full and cap and len(ids) > cap:
            ids, text = ids[:cap], self._prefix_text(split, cap)
        if not ids:
            return {}
        nats = total_nats(model, ids, start_token_id(self.tok))
        loss = nats / len(ids)
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
                "bpc": nats / math.log(2) / count_chars(text)}

    def _prefix_text(self, split: str, n: int) -> str:
        """The text of the first n tokens of ``split`` (decoded once; exact for char and BPE)."""
        key = (split, n)
        if key not in self._prefixes:
            self._prefixes[key] = self.tok.decode(self.ids[split][:n])
        return self._prefixes[key]

    def state_tensors(self) -> dict[str, Tensor]:
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"state.{i}": t for i, t in enumerate(parts)}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        parts = [tensors[f"state.{i}"] for i in range(len(tensors))]
        self.state = None if not parts else tuple(parts) if len(parts) > 1 else parts[0]

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        """A sample after each evaluation (its own generator: training's RNG stays untouched)."""
        text = sample_text(model, self.tok, self.s["prime"], self.s["sample_length"],
                           self.s["temperature"], seed=self.s["seed"] * 1_000_003 + step)
        block = f"--- step {step} ---\n{self.s['prime']}{text}\n"
        from tqdm import tqdm

        tqdm.write(block, file=sys.stderr)
        run.append("samples.txt", block)


def sample_text(model: nn.Module, tokenizer: Tokenizer, prime: str, length: int,
                temperature: float, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    ids = generate(model, tokenizer.encode(prime), length, temperature=temperature,
                   generator=g, start_id=start_token_id(tokenizer))
    return tokenizer.decode(list(ids))


def run_lm(given: dict[str, Any]) -> dict[str, Any]:
    """Train a language model; return the summary (also in ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults.
    A non-finite loss ends the run with ``status == "nonfinite"`` (the last good checkpoint is
    kept); the CLI turns that into an error.

    Example:
        >>> s = run_lm({"dataset": "hello", "hidden": 32, "embed": 16, "steps": 50,
        ...             "seq_len": 16, "batch_size": 4, "out": "/tmp/hello"})  # doctest: +SKIP
        >>> s["val_bpc"] < 0.5                                                  # doctest: +SKIP
        True
    """
    return launch(settings_for(given, DEFAULTS), _run)


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    run, resume = open_run(s, "lm", dist)
    TrainSettings.from_dict({**s, "lr": 1.0 if s["lr"] is None else s["lr"]})  # fail early

    # everything that can fail on the user's input, before anything is written
    seed_everything(s["seed"])
    parts = lm_splits(s, report=say if dist.main else None)
    train, val, test = parts.train, parts.val, parts.test
    sized = fill_sizes(s, len(train))  # a resumed run has its sizes already
    batch_free = s["batch_size"] is None  # not given (nor resumed): fit_to_budget may lower it
    s["batch_size"] = s["batch_size"] or BATCH_SIZE
    if resume and (run.checkpoints / "tokenizer.json").is_file():
        tokenizer = Tokenizer.load(run.checkpoints)
    else:
        tokenizer = build_tokenizer(s["tokenizer"], train, s["vocab_size"])
    budget = fit_to_budget(s, sized, lambda w: seconds_per_step(s, tokenizer.vocab_size, w,
                                                                device), device, dist.world,
                           SMALL_TEXT_BATCH if batch_free and len(train) < SMALL_BATCH_BELOW
                           else None)
    vectors = pretrained_vectors(s, tokenizer) if s.get("embeddings") and not resume else None
    model = LanguageModel(tokenizer.vocab_size, cell=s["cell"], embed=s["embed"],
                          hidden=s["hidden"], layers=s["layers"], dropout=s["dropout"],
                          tie_weights=s["tie_weights"], backend=s["backend"],
                          embed_dropout=s["embed_dropout"], **regularisers(s))
    coverage = use_pretrained(model, tokenizer, vectors, s)
    own_dropout(dist, s["seed"])
    task = LMTask(tokenizer, train, val, test, s, dist, device)

    write_run_files(run, resume, dist, {
        **s, "resume": None, "model": model.config, "split": parts.kind,
        "split_chars": parts.chars(),
        "sized_from_text": {"train_chars": len(train), "settings": sized,
                            **({"budget": budget} if budget else {})}}, tokenizer.save)
    extra = {"dataset": s["text"] or s["dataset"] or DEFAULT_DATASET, "tokenizer": s["tokenizer"],
             "cell": s["cell"], "split": parts.kind, **parts.chars(), "out": s["out"],
             "sample_prime": s["prime"] or _first_word(val or train)}
    if coverage is not None:
        extra["embeddings_coverage"] = coverage
        kept = "frozen" if s["freeze_embeddings"] else "fine-tuned"
        say(f"{s['embeddings']}: vectors of {s['embed']} numbers for {coverage:.0%} of the "
            f"{tokenizer.vocab_size:,} word tokens ({kept}; the rest start random)")
    if dist.main:
        extra.update(_ngram_baseline(train, val, test, s["ngram_order"]))
        say(f"{extra['dataset']}: {len(train):,} training characters ({len(val):,} validation, "
             f"{len(test):,} test: {parts.kind} split), {tokenizer.vocab_size} "
             f"tokens ({s['tokenizer']}); {sum(p.numel() for p in model.parameters()):,} "
             f"parameters; {s['ngram_order']}-gram baseline: val bpc "
             f"{extra['val_ngram_bpc']:.3f}")
        for line in chosen_lines(s, sized, budget):
            say(line)
    # the settings as fit_to_budget left them (its learning rate too)
    trainer = Trainer(model, task, TrainSettings.from_dict(s), run, dist, device,
                      summary_extra=extra)
    summary = trainer.fit()
    note_warnings(run, summary, s)
    return summary


def seconds_per_step(s: dict[str, Any], vocab: int, hidden: int, device: torch.device,
                     steps: int = 4) -> float:
    """A training step's seconds (forward, backward, AdamW) for the run's model at width
    ``hidden`` on random tokens of the run's batch shape: the median after a first step that
    pays for warming up."""
    embed = hidden if s.get("tie_weights") else s["embed"]
    model = LanguageModel(vocab, cell=s["cell"], embed=embed, hidden=hidden,
                          layers=s["layers"], dropout=s["dropout"],
                          tie_weights=s["tie_weights"], backend=s["backend"],
                          embed_dropout=s["embed_dropout"], **regularisers(s)).to(device)
    x = torch.randint(vocab, (s["seq_len"] + 1, s["batch_size"]), device=device)

    def loss() -> torch.Tensor:
        logits, _ = model(x[:-1])
        return F.cross_entropy(logits.reshape(-1, vocab).float(), x[1:].reshape(-1))

    return median_step_seconds(model, loss, device, steps)


def pretrained_vectors(s: dict[str, Any], tokenizer: Tokenizer) -> tuple[list[str], Tensor]:
    """The ``--embeddings`` file's vectors of the tokenizer's words (word2vec text format, e.g.
    ``rnnkit embed RUN --export``); sets ``s["embed"]`` to their size."""
    from .classifier import pretrained

    return pretrained(s, tokenizer)


def use_pretrained(model: LanguageModel, tokenizer: Tokenizer,
                   vectors: tuple[list[str], Tensor] | None, s: dict[str, Any]) -> float | None:
    """Start the embedding from ``vectors`` (when given; returns the share of tokens found)
    and keep it fixed with ``--freeze-embeddings`` (a resumed run too)."""
    from ..data.vectors import pretrained_embedding

    if s.get("tie_weights") and s.get("freeze_embeddings"):
        raise UserError("--freeze-embeddings with --tie-weights would freeze the output layer "
                        "too (they share one matrix); drop one of them")
    coverage = None
    if vectors is not None:
        weights, coverage = pretrained_embedding(tokenizer.vocab, *vectors,
                                                 model.embedding.weight.detach())
        model.embedding.weight.data.copy_(weights)
    if s.get("freeze_embeddings"):
        model.embedding.weight.requires_grad_(False)
    return coverage


def lm_splits(s: dict[str, Any], report: Callable[[str], None] | None = None) -> TextSplits:
    """The run's train, validation and test text from its settings (``DEFAULTS``' names): what
    training reads, and what ``rnnkit evaluate`` reads again. A run from before ``--val`` and
    ``--test`` has neither in its config."""
    return load_splits(s.get("dataset"), s.get("text"), s.get("max_chars"), val=s.get("val"),
                       test=s.get("test"),
                       val_fraction=s.get("val_fraction", DEFAULTS["val_fraction"]),
                       test_fraction=s.get("test_fraction", DEFAULTS["test_fraction"]),
                       report=report)


def _ngram_baseline(train: str, val: str, test: str, order: int) -> dict[str, float]:
    ngram = CharNGram(order).fit(train)
    return {"val_ngram_bpc": ngram.bits_per_char(val) if val else float("nan"),
            "test_ngram_bpc": ngram.bits_per_char(test) if test else float("nan")}


def _first_word(text: str) -> str:
    words = text[:200].split()
    return words[0][:20] if words else text[:1]
