"""One Trainer for every task: the loop, clipping, schedule, budgets, evaluation, checkpoints.

A task (language model, classifier, seq2seq ...) supplies what differs: how one batch gives a
loss, how a split is evaluated, and any state carried between batches (``Task`` below). The
Trainer does the rest, the same way for all of them:

    for each step:   loss = task.train_step(...)      (bf16 autocast on a GPU)
                     stop if the loss or the gradient norm is not finite
                     backward, clip (deck 000's clipnorm), optimizer step, schedule step
                     every log_every steps: a metrics line; at each evaluation point:
                     evaluate, keep the best, early stopping; every checkpoint_every: a
                     resumable checkpoint (model, optimizer, schedule, counters, carried
                     state, RNGs)

Evaluation points: every ``eval_every`` steps when it is given; otherwise EVALS_PER_RUN times
over the budget (every total/EVALS_PER_RUN steps, or max_time/EVALS_PER_RUN seconds when time
is the only budget, and never more often than MAX_EVAL_SHARE of the time allows), so a small
text seen many times over is evaluated often enough that the best checkpoint lands near the
best point, whatever the corpus size. The best checkpoint is restored at the end.

SIGTERM or Ctrl-C (SIGINT) ends the run after the step in progress, with a resumable checkpoint
(status ``interrupted``); a second Ctrl-C stops at once (the last checkpoint stays).

Resuming loads the last checkpoint and cuts the logs back to it; since the data position is
a function of the step and every random generator is restored, a resumed CPU run repeats the
uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import UserError
from . import distributed as D
from .averaging import weight_average
from .checkpoint import load_checkpoint, save_checkpoint
from .rundir import RunDir
from .schedule import lr_factor, step_progress
from .state import load_optimizer_state, load_rng_state, optimizer_state, rng_state

OPTIMIZERS = ("adamw", "sgd")
CLIP_MODES = ("norm", "value")
EVALS_PER_RUN = 16  # evaluation points over a budget when --eval-every is not given
MAX_EVAL_SHARE = 0.05  # periodic evaluations take at most this share of a time budget
MAX_WARMUP_SHARE = 0.05  # a time budget's warmup ends here even if its steps are not done
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Task(Protocol):
    """What a task gives the Trainer. Metrics are "lower is better" for ``monitor``."""

    name: str  # "lm", "classifier" ... (summary.json's task)
    unit: str  # what throughput counts: "tokens" or "examples"
    monitor: str  # the validation metric for best checkpoint and early stopping, e.g. "loss"
    # optional: ``tie_break``, a second metric ("lower is better") that decides between equal
    # values of ``monitor`` (seq2seq: 100 % exact twice, the lower loss is the better model)

    def batches_per_epoch(self) -> int: ...
    def start_epoch(self, epoch: int) -> None: ...
    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        """Loss of batch ``index`` of ``epoch`` (mean over its units) and how many units."""
    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Metrics of ``split``; ``full=False`` while training (a task may score a part)."""
    def state_tensors(self) -> dict[str, Tensor]: ...
    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None: ...
    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None: ...


@dataclass
class TrainSettings:
    """The Trainer's settings (the rest of a run's config belongs to its task)."""

    steps: int | None = None  # budgets: whichever ends first
    epochs: int | None = None
    max_time: float | None = None  # seconds of training (summed over resumes)
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    momentum: float = 0.9  # sgd
    clip: float = 1.0  # 0: no clipping
    clip_mode: str = "norm"
    schedule: str = "cosine"
    warmup: int = 100
    min_lr_ratio: float = 0.1
    ema: float = 0.0  # decay of the weights' moving average that is evaluated and kept; 0: off
    patience: int = 0  # evaluations without improvement before stopping; 0: never
    eval_every: int | None = None  # steps; None: EVALS_PER_RUN points over the budget
    log_every: int = 10
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> TrainSettings:
        names = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in settings.items() if k in names and v is not None})
        s.check()
        return s

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose --optimizer from "
                            f"{', '.join(OPTIMIZERS)}")
        if self.clip_mode not in CLIP_MODES:
            raise UserError(f"unknown clip mode {self.clip_mode!r}; choose from "
                            f"{', '.join(CLIP_MODES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr must be a positive number, got {self.lr}")
        for name in ("steps", "epochs", "eval_every", "log_every", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
        if self.max_time is not None and self.max_time <= 0:
            raise UserError(f"--max-time must be a positive number of seconds, got "
                            f"{self.max_time}")
        if self.steps is None and self.epochs is None and self.max_time is None:
            raise UserError("no training budget: give --steps N, --epochs N or --max-time S")
        for name, note in (("warmup", ""), ("patience", " (0: off)")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UserError(f"--{name} must be a whole number >= 0{note}, got {v!r}")
        # a negative clipping norm scales every gradient by a negative factor: gradient ascent
        for name, note in (("weight_decay", ""), ("clip", " (0: off)")):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < math.inf):
                raise UserError(f"--{name.replace('_', '-')} must be a number >= 0{note}, "
                                f"got {v!r}")
        for name in ("momentum", "ema"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise UserError(f"--{name} must be in [0, 1), got {v!r}")


@dataclass
class Progress:
    """The counters a resumed run continues from (saved as JSON in every checkpoint)."""

    step: int = 0
    best: float | None = None
    best_step: int | None = None
    best_tie: float | None = None  # the tie-break metric at the best evaluation
    bad_evals: int = 0
    last_eval_step: int = -1
    next_eval_at: float = 0.0  # seconds: the next evaluation point of a time-only budget
    elapsed: float = 0.0  # wall seconds of the loop (the --max-time budget)
    step_seconds: float = 0.0  # seconds inside training steps (throughput)
    units: int = 0  # tokens or examples trained on, all ranks
    log_loss: float = 0.0  # sum of loss * units since the last metrics line (this rank)
    log_units: int = 0
    log_grad_norm: float = 0.0  # the largest gradient norm (before clipping) since that line


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available; use "
                        "--device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


class Trainer:
    """Train ``model`` on ``task`` into the run directory ``run``.

    Example (a task is any object with the ``Task`` methods; see rnnkit.train.lm.LMTask):
        >>> trainer = Trainer(model, task, TrainSettings(steps=100), run)   # doctest: +SKIP
        >>> summary = trainer.fit()                                         # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, task: Task, settings: TrainSettings, run: RunDir,
                 dist: D.Dist | None = None, device: torch.device | None = None,
                 summary_extra: dict[str, Any] | None = None):
        self.task, self.s, self.run = task, settings, run
        self.dist = dist or D.Dist()
        self.device = device or resolve_device(settings.device)
        self.model = model.to(self.device)
        self.summary_extra = dict(summary_extra or {})
        self.n_batches = task.batches_per_epoch()
        self.total = self._total_steps()
        self.opt = self._optimizer()
        self.average = weight_average(self.model, settings.ema)  # what is evaluated and kept
        self.lr_factor = lr_factor(settings.schedule, settings.warmup, settings.min_lr_ratio)
        self.p = Progress()
        self.status: str | None = None
        self.stop_signal: int | None = None  # SIGTERM or SIGINT received while training
        self._resume_or_start()
        self.net = self.model  # what the training steps call (DDP wrapper when distributed)
        if self.dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    # ---- setup ------------------------------------------------------------------------------
    def _total_steps(self) -> int | None:
        s = self.s
        if s.steps is not None:
            return s.steps if s.epochs is None else min(s.steps, s.epochs * self.n_batches)
        return None if s.epochs is None else s.epochs * self.n_batches

    def _optimizer(self) -> torch.optim.Optimizer:
        params = list(self.model.parameters())
        if self.s.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.s.lr, momentum=self.s.momentum,
                                   weight_decay=self.s.weight_decay)
        # the fused kernel: one pass over each parameter instead of ~10 ops (6 ms -> 0.4 ms a
        # step for the main job's model on the CPU)
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.AdamW(params, lr=self.s.lr, weight_decay=self.s.weight_decay,
                                 fused=fused)

    def _resume_or_start(self) -> None:
        last = self.run.checkpoints / "last.safetensors"
        if not last.is_file():  # a fresh run (or one killed before its first checkpoint)
            self.run.truncate_logs({})
            if self.dist.main:
                save_checkpoint(self.run.checkpoints / "init.safetensors", self.model, None,
                                {"kind": "init", "step": 0})
            return
        ck = load_checkpoint(last)
        meta = ck.metadata
        if meta.get("kind") != "last" or "progress" not in meta:
            raise UserError(f"{last} is not a resumable checkpoint (no trainer state); "
                            "start a new run instead of --resume")
        try:
            self.model.load_state_dict(ck.model_state)
        except RuntimeError as e:
            raise UserError(f"{last} does not fit this run's model ({str(e).splitlines()[0]});"
                            " the run directory was changed: start a new run") from e
        load_optimizer_state(self.opt, ck.extra, meta["optimizer"])
        load_rng_state(ck.extra, meta["rng"])
        self.task.load_state_tensors({k[5:]: v.to(self.device) for k, v in ck.extra.items()
                                      if k.startswith("task.")})
        self._load_average(ck.extra, meta)
        self.p = Progress(**meta["progress"])
        self.run.truncate_logs(meta["logs"])
        if self.dist.main:
            print(self.resume_line(), file=sys.stderr, flush=True)

    def _load_average(self, extra: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """The weight average a checkpoint saved (one from before ``--ema``, or from a run
        without it, has none: the average starts again from the weights)."""
        if self.average is None or "averaged" not in meta:
            return
        self.average.module.load_state_dict(
            {k[8:]: v for k, v in extra.items() if k.startswith("average.")})
        self.average.n_averaged.fill_(meta["averaged"])

    @property
    def kept(self) -> nn.Module:
        """The model that is evaluated, sampled from and kept: the weight average with
        ``ema``, else the training weights."""
        return self.model if self.average is None else self.average.module

    def resume_line(self) -> str:
        """What a resumed run starts from and how much of its budget is left (budgets count
        the whole run, not each resume)."""
        p, s = self.p, self.s
        done = f"resuming {self.run.path} at step {p.step:,} ({p.elapsed:.1f} s trained)"
        left = []
        if s.max_time is not None:
            rest = max(0.0, s.max_time - p.elapsed)
            left.append(f"{rest:.1f} s of --max-time {s.max_time:g} left" if rest else
                        f"--max-time {s.max_time:g} is already spent")
        if self.total is not None:
            rest = max(0, self.total - p.step)
            left.append(f"{rest:,} of {self.total:,} steps left" if rest else
                        f"all {self.total:,} steps are done")
        line = f"{done}; " + ", ".join(left)
        if (s.max_time is not None and p.elapsed >= s.max_time) or \
                (self.total is not None and p.step >= self.total):
            line += ("; budgets count the whole run: raise --max-time, --steps or --epochs "
                     "to train further")
        return line

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train until a budget ends, early stopping, or a non-finite loss; return the summary
        (also written to ``summary.json``)."""
        bar = tqdm(total=self.total, initial=self.p.step, file=sys.stderr, unit="step",
                   disable=not (self.dist.main and self.s.progress), dynamic_ncols=True,
                   mininterval=0.5, leave=True)
        start, elapsed0 = time.perf_counter(), self.p.elapsed
        if self.p.next_eval_at == 0.0 and self.s.max_time:
            self.p.next_eval_at = self.s.max_time / EVALS_PER_RUN
        try:
            with self._stop_on_signals():
                while self.status is None:
                    self.p.elapsed = elapsed0 + time.perf_counter() - start
                    if self._interrupted():
                        self.status = "interrupted"
                        break
                    if self._budget_spent():  # "budget": the clock cut a planned count short
                        short = self.total is not None and self.p.step < self.total
                        self.status = "budget" if short else "completed"
                        break
                    self._train_one_step(bar)
                    self.p.elapsed = elapsed0 + time.perf_counter() - start
                    if self.status == "nonfinite":
                        break
                    self._after_step(bar)
        finally:
            bar.close()
        return self._finish()

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """While training, SIGTERM and the first Ctrl-C ask the loop to stop after the step in
        progress (the next one raises KeyboardInterrupt, as usual)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def ask_to_stop(signum, frame):
            if self.stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_signal = signum

        previous = {sig: signal.signal(sig, ask_to_stop) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupted(self) -> bool:
        stop = self.stop_signal is not None
        if self.dist.active:  # torchrun signals every rank, but not at the same step
            stop = D.any_rank(self.dist, stop)
            if stop and self.stop_signal is None:
                self.stop_signal = signal.SIGTERM
        return stop

    def _budget_spent(self) -> bool:
        out_of_steps = self.total is not None and self.p.step >= self.total
        out_of_time = self.s.max_time is not None and self.p.elapsed >= self.s.max_time
        if self.dist.active:  # clocks differ: everyone stops when one rank's time is up
            out_of_time = D.any_rank(self.dist, out_of_time)
        return out_of_steps or out_of_time

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train_one_step(self, bar) -> None:
        t0 = time.perf_counter()
        epoch, index = divmod(self.p.step, self.n_batches)
        if index == 0:
            self.task.start_epoch(epoch)
        self.net.train()
        with self._autocast():
            loss, units = self.task.train_step(self.net, epoch, index)
        value = float(loss.detach())
        if D.any_rank(self.dist, not math.isfinite(value)):
            return self._nonfinite(f"the loss became {value}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = self._clip()
        if not math.isfinite(norm):
            return self._nonfinite(f"the gradient norm became {norm}")
        self._set_lr()
        self.opt.step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        self.p.step += 1
        self.p.units += units * self.dist.world
        self.p.log_loss += value * units
        self.p.log_units += units
        self.p.log_grad_norm = max(self.p.log_grad_norm, norm)
        self.p.step_seconds += time.perf_counter() - t0
        bar.update(1)

    def _set_lr(self) -> None:
        """The schedule's rate for this step: a function of the step, and of the budget spent
        (steps, or seconds when time is the only budget)."""
        if self.total is not None:
            progress = step_progress(self.p.step, self.s.warmup, self.total)
        else:
            progress = self.p.elapsed / self.s.max_time
        if self.dist.active and self.total is None:  # one clock for all ranks: rank 0's
            progress = D.all_sum(self.dist, progress if self.dist.main else 0.0)[0]
        step = self.p.step
        if self.total is None and progress >= MAX_WARMUP_SHARE:
            step = max(step, self.s.warmup)  # a slow machine: the warmup ends with its share
        lr = self.s.lr * self.lr_factor(step, progress)
        for group in self.opt.param_groups:
            group["lr"] = lr

    def _clip(self) -> float:
        """Clip the gradients; return their norm before clipping (what explodes)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.s.clip if self.s.clip and self.s.clip_mode == "norm" else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if self.s.clip and self.s.clip_mode == "value":
            torch.nn.utils.clip_grad_value_(params, self.s.clip)
        return norm

    def _nonfinite(self, what: str) -> None:
        self.status = "nonfinite"
        self.nonfinite_reason = f"{what} at step {self.p.step + 1}"
        self.opt.zero_grad(set_to_none=True)
        self.run.log_metrics({"step": self.p.step + 1, "nonfinite": what})

    def _after_step(self, bar) -> None:
        step, s = self.p.step, self.s
        if step % s.log_every == 0:
            self._log_train(bar)
        evaluated = self._eval_due()
        if evaluated:
            self._evaluate()
        if evaluated or step % s.checkpoint_every == 0:
            self._save_last()

    def _eval_due(self) -> bool:
        """Whether this step is an evaluation point (see the module doc)."""
        s, step = self.s, self.p.step
        if s.eval_every is not None:
            return step % s.eval_every == 0
        if self.total is not None:  # a step budget: points fixed in steps (resumes repeat them)
            return step % max(1, math.ceil(self.total / EVALS_PER_RUN)) == 0
        due = self.p.elapsed >= self.p.next_eval_at
        if self.dist.active:  # one decision for all ranks: rank 0's clock
            due = D.all_sum(self.dist, float(due) if self.dist.main else 0.0)[0] > 0
        return due

    def _log_train(self, bar) -> None:
        loss_sum, units = D.all_sum(self.dist, self.p.log_loss, self.p.log_units)
        loss = loss_sum / max(units, 1)
        rate = self.p.units / max(self.p.step_seconds, 1e-9)
        row = {"step": self.p.step, "epoch": self.p.step / self.n_batches, "loss": loss,
               "lr": self.opt.param_groups[0]["lr"],
               "grad_norm": self.p.log_grad_norm,  # the same on every rank (all-reduced)
               f"{self.task.unit}_per_second": rate, "elapsed": self.p.elapsed}
        if self.dist.main:
            self.run.log_metrics(row)
        if self.dist.main and bar is not None:
            left = ""
            if self.total is None and self.s.max_time:  # no step count: the ETA is the clock's
                secs = max(0, int(self.s.max_time - self.p.elapsed))
                left = f", {secs // 60}:{secs % 60:02d} left"
            bar.set_postfix_str(f"loss {loss:.3f}, {rate:,.0f} {self.task.unit}/s{left}",
                                refresh=False)
        self.p.log_loss, self.p.log_units, self.p.log_grad_norm = 0.0, 0, 0.0

    def _evaluate(self) -> dict[str, float]:
        """Validation metrics now; keeps the best checkpoint and counts for early stopping."""
        t0 = time.perf_counter()
        metrics = self.task.evaluate(self.kept, "val", full=False)
        self.model.train()
        self.p.last_eval_step = self.p.step
        value = metrics[self.task.monitor]
        row = {"step": self.p.step, "epoch": self.p.step / self.n_batches,
               **{f"val_{k}": v for k, v in metrics.items()}}
        if self.dist.main:
            from ..analysis.spectra import spectral_radii

            radii = spectral_radii(self.model)  # deck 002 (the trained weights): above 1, explode
            self.run.log_metrics({**row, "spectral_radius": radii} if radii else row)
        tie_name = getattr(self.task, "tie_break", None)
        tie = metrics.get(tie_name) if tie_name else None
        better = self.p.best is None or value < self.p.best or (
            value == self.p.best and tie is not None and self.p.best_tie is not None
            and tie < self.p.best_tie)
        if better:
            self.p.best, self.p.best_step, self.p.bad_evals = value, self.p.step, 0
            self.p.best_tie = tie
            if self.dist.main:
                save_checkpoint(self.run.checkpoints / "best.safetensors", self.kept, None,
                                {"kind": "best", "step": self.p.step, f"val_{self.task.monitor}":
                                 value})
        else:
            self.p.bad_evals += 1
            if self.s.patience and self.p.bad_evals >= self.s.patience:
                self.status = "early_stopped"
        if self.dist.main:
            self.task.on_evaluate(self.kept, self.p.step, self.run)
        if self.s.max_time:  # the next point of a time budget: evaluations stay a small share
            cost = time.perf_counter() - t0
            gap = max(self.s.max_time / EVALS_PER_RUN, cost / MAX_EVAL_SHARE)
            self.p.next_eval_at = self.p.elapsed + gap
        return metrics

    def _save_last(self) -> None:
        """The resumable checkpoint: weights, optimizer, schedule, RNGs, task state, counters,
        and the log sizes at this moment, all in one atomically replaced file."""
        if not self.dist.main:
            return
        opt_t, opt_meta = optimizer_state(self.opt)
        rng_t, rng_meta = rng_state()
        extra = {**opt_t, **rng_t,
                 **{f"task.{k}": v for k, v in self.task.state_tensors().items()}}
        meta = {"kind": "last", "step": self.p.step, "progress": asdict(self.p),
                "optimizer": opt_meta, "rng": rng_meta,
                "logs": self.run.log_sizes()}
        if self.average is not None:
            extra.update({f"average.{k}": v
                          for k, v in self.average.module.state_dict().items()})
            meta["averaged"] = int(self.average.n_averaged)
        save_checkpoint(self.run.checkpoints / "last.safetensors", self.model, extra, meta)

    # ---- the end ----------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        final: dict[str, Any] = {}
        if self.status == "nonfinite":
            final["error"] = self.nonfinite_reason
            if self.p.best is not None:
                final[f"val_{self.task.monitor}"] = self.p.best
        elif self.status == "interrupted":  # quick: a resumable checkpoint, no final scores
            self._save_last()  # (the partial metrics line waits in Progress for the resume)
            final["signal"] = signal.Signals(self.stop_signal).name
        else:
            status = self.status
            if self.p.log_units:
                self._log_train(None)
            if self.p.last_eval_step != self.p.step:
                self._evaluate()  # the final weights, for the curve and the best checkpoint
            self.status = status
            self._save_last()
            if self.average is not None:  # the model reported from here on is the average
                self.model.load_state_dict(self.average.module.state_dict())
            self._restore_best()
            for split in ("val", "test"):
                metrics = self.task.evaluate(self.model, split)
                final.update({f"{split}_{k}": v for k, v in metrics.items()})
        summary: dict[str, Any] = {
            "task": self.task.name, "status": self.status, "seed": self.s.seed,
            "device": str(self.device), "world_size": self.dist.world,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "steps": self.p.step, "epochs": self.p.step / self.n_batches,
            "train_seconds": self.p.elapsed,
            f"{self.task.unit}_per_second": self.p.units / max(self.p.step_seconds, 1e-9),
            "best_step": self.p.best_step, **final, **self.summary_extra,
        }
        if self.dist.main:
            self.run.write_json("summary.json", summary)
            from .plots import plot_losses

            plot_losses(self.run)
        return summary

    def _restore_best(self) -> None:
        """Report the best validation checkpoint (the weights early stopping would keep)."""
        if self.p.best_step is None or self.p.best_step == self.p.step:
            return
        if self.dist.active:
            torch.distributed.barrier()  # rank 0 has written best.safetensors
        ck = load_checkpoint(self.run.checkpoints / "best.safetensors")
        self.model.load_state_dict(ck.model_state)
