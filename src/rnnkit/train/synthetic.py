"""Generated tasks (``rnnkit train synthetic``): deck 002's iterative algorithms and the
long-term-dependency benchmarks (``rnnkit.data.synthetic``), on the one Trainer.

- ``binary-add`` and ``parity``: a synced many-to-many model (``SyncedRNN``, a read-out at every
  step, cross-entropy per bit) trained on inputs of ``--bits`` bits (8); tested on held-out
  inputs of that size and on 1,000 random 1,000-bit inputs, where only the algorithm, not a
  table, is exact. Beside it, deck 002's contrast: a feed-forward network trained on the same
  training inputs (``models.feedforward``), which errs on held-out inputs and cannot read
  1,000-bit ones at all.
- ``adding`` and ``copy`` at ``--length T``: many-to-one regression (MSE, against always
  answering 1.0) and synced many-to-many classification (against the memoryless baseline).

Batches are drawn fresh every step from a generator seeded by (seed, step), so a resumed run
repeats the uninterrupted one exactly; an epoch is nominal (``EPOCH_EXAMPLES``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.distributed
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.synthetic import (
    BIT_TASKS,
    COPY_ALPHABET,
    COPY_SYMBOLS,
    DATASETS,
    DELIMITER,
    LONG_BITS,
    TRIVIAL_ADDING_MSE,
    Examples,
    Synthetic,
    check_dataset,
    copy_baseline_loss,
    sequence_steps,
)
from ..errors import UserError
from ..layers.init import CHRONO_TMAX
from ..layers.init import SCHEMES as INIT_SCHEMES
from ..models.feedforward import BitMLP
from ..models.synced import SyncedRNN
from . import distributed as D
from .rundir import RunDir
from .runs import launch, open_run, own_dropout, say, settings_for, write_run_files
from .state import seed_everything
from .trainer import Trainer, TrainSettings

EPOCH_EXAMPLES = 10_000  # data is drawn fresh every step: an epoch is a nominal count
EVAL_CHUNK = 250  # examples per forward pass when scoring a fixed set ...
EVAL_BYTES = 2**31  # ... fewer where their outputs (8 bytes a unit and step) would pass this
SOLVED_ADDING_RATIO = 0.01  # adding is solved below 1% of the trivial predictor's MSE
SOLVED_COPY_ACCURACY = 0.99
# Memory per row and step: a training step keeps about 10-11 floats a unit (an LSTM, copy at
# hidden 128, peak resident size: 4.9 kB a row-step from T = 2,000 to 8,000, 5.4 kB at 20,000
# with the rest of the process); a fixed set keeps its int64 inputs and targets
TRAIN_BYTES_PER_UNIT = 48
SET_BYTES_PER_STEP = 16

# ``None``: chosen by the dataset (PER_DATASET), recorded in config.json
DEFAULTS: dict[str, Any] = {
    "task": "synthetic",
    # data
    "dataset": "binary-add", "length": None, "bits": None, "noise": None, "val_size": 1000,
    "test_size": 1000,
    # model
    "cell": None, "hidden": None, "layers": 1, "dropout": 0.0, "embed": None,
    "backend": "auto",
    # initialisation (rnnkit.layers.init); None: by the dataset and cell (fill_init)
    "init": None, "forget_bias": None, "chrono_tmax": None,
    # batches
    "batch_size": None,
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": None, "epochs": None, "max_time": None, "lr": None, "optimizer": "adamw",
    "weight_decay": 0.01, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 100, "min_lr_ratio": 0.1, "ema": 0.0, "patience": 0,
    "eval_every": None, "log_every": 10, "checkpoint_every": 100, "seed": 0, "device": "auto",
    "threads": None, "progress": True,
    # deck 002's contrast (bit tasks): Adam steps of the feed-forward network, 0: none
    "feedforward_steps": 2000,
    # run directory
    "out": None, "resume": None,
}

# The bit tasks: deck 002's recurrent neuron (tanh), 16 wide, learns the adder and the running
# XOR in 2,000 steps (seconds) so that they stay exact over 1,000-bit inputs: the adder for 24
# seeds in 24, parity for 23 in 24 (the 24th: 999 of 1,000 inputs) in the tuning runs. Parity
# needs noise on its training inputs for that: without it 8 seeds in 12 drift off over long
# inputs; the noise teaches the two parity states to pull a disturbed state back. LSTM and GRU
# learn both too, but their states drift over 1,000 steps.
# Adding and copy (tuning runs on one thread, BENCHMARKS.md "Which cell learns which span"):
# gated cells start with chrono gates spanning the task's T (fill_init). Adding: 64 units at
# lr 0.005 (an LSTM at T = 200 solves it in 1,500 steps, 0.6% of the trivial MSE; at lr 0.002,
# 3.5% after 3,000; 128 units cost 3x a step on a CPU); the budget in steps grows with T
# (default_steps). Copy: 128 units at lr 0.01 (a GRU at T = 50: 98% of the symbols right after
# 3,000 steps; 64 units at lr 0.005, 52%; 128 at 0.005, 65% after 1,500).
_BITS = {"bits": 8, "cell": "rnn_tanh", "hidden": 16, "batch_size": 64, "lr": 1e-2,
         "steps": 2000, "threads": 1}  # a model this small runs fastest on one thread
_SEQUENCES = {"length": 50, "noise": 0.0, "cell": "lstm", "hidden": 64, "batch_size": 64,
              "lr": 5e-3}
PER_DATASET: dict[str, dict[str, Any]] = {
    "binary-add": {**_BITS, "noise": 0.0}, "parity": {**_BITS, "noise": 0.2},
    "adding": _SEQUENCES, "copy": {**_SEQUENCES, "hidden": 128, "embed": 16, "lr": 1e-2},
}
# (steps at T = 50, the power of T/50 they scale by): adding's grow with T (1,500 at T = 50,
# 2,300 at 200, 3,000 at 500); copy's shrink (4,000 at 50, 2,000 at 200, 1,300 at 500) so
# that the default table of `rnnkit bench memory` fits in about an hour on 2 cores (a step
# costs about T: in seconds, copy's budget still grows as sqrt(T))
STEP_BUDGET = {"adding": (1500, 0.3), "copy": (4000, -0.5)}
STEP_BUDGET_RANGE = (500, 5000)


def default_steps(dataset: str, length: int) -> int:
    """The step budget of adding or copy at ``length`` T: ``STEP_BUDGET``'s power law, rounded
    to 100 steps, within ``STEP_BUDGET_RANGE``.

    Example:
        >>> [default_steps("adding", n) for n in (50, 200, 500)]
        [1500, 2300, 3000]
        >>> [default_steps("copy", n) for n in (50, 200, 500)]
        [4000, 2000, 1300]
    """
    base, power = STEP_BUDGET[dataset]
    steps = round(base * (length / 50) ** power / 100) * 100
    return min(max(steps, STEP_BUDGET_RANGE[0]), STEP_BUDGET_RANGE[1])


BUDGETS = ("steps", "epochs", "max_time")


def fill_dataset_defaults(s: dict[str, Any]) -> list[str]:
    """Fill the settings left ``None`` with the dataset's choices (the budget only when no
    budget was given); return their names. Then check the dataset's own settings."""
    if s["dataset"] not in DATASETS:
        check_dataset(s["dataset"], None, None)  # raises: unknown dataset
    chosen = []
    for key, value in PER_DATASET[s["dataset"]].items():
        if key in BUDGETS and any(s[b] is not None for b in BUDGETS):
            continue
        if s[key] is None:
            s[key], chosen = value, [*chosen, key]
    check_dataset(s["dataset"], s["length"], s["bits"])
    if s["dataset"] in STEP_BUDGET and not any(s[b] is not None for b in BUDGETS):
        s["steps"], chosen = default_steps(s["dataset"], s["length"]), [*chosen, "steps"]
    chosen += fill_init(s)
    if s["embed"] is not None and s["dataset"] != "copy":
        raise UserError(f"--embed is for copy's symbols; {s['dataset']} feeds its "
                        f"{'bits' if s['dataset'] in BIT_TASKS else 'values'} to the cell "
                        "directly (drop --embed)")
    noise = s["noise"]
    if not isinstance(noise, int | float) or not 0 <= noise < math.inf:
        raise UserError(f"--noise must be a number >= 0, got {noise!r}; e.g. --noise 0.2")
    if noise and s["dataset"] not in BIT_TASKS:
        raise UserError(f"--noise is for the bit tasks' inputs; {s['dataset']} takes none "
                        "(drop --noise)")
    for key, low in (("val_size", 1), ("test_size", 1), ("batch_size", 1),
                     ("feedforward_steps", 0)) + ((("embed", 1),) if s["dataset"] == "copy"
                                                  else ()):
        if not isinstance(s[key], int) or s[key] < low:
            raise UserError(f"--{key.replace('_', '-')} must be a whole number of at least "
                            f"{low}, got {s[key]!r}")
    return chosen


def check_memory(s: dict[str, Any], free: int | None, share: float = 0.9) -> None:
    """A clear error where a training step and the fixed sets of adding or copy would take
    more than ``share`` of the ``free`` bytes (None: unknown, no check): they grow with
    ``--length``, and running out kills the process without a word.

    Example:
        >>> s = {"dataset": "copy", "length": 100_000, "batch_size": 64, "hidden": 128,
        ...      "layers": 1, "val_size": 1000, "test_size": 1000}
        >>> check_memory(s, 24 * 2**30)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rnnkit.errors.UserError: copy at --length 100,000 needs about 40 GiB ... 54,523 or less
    """
    if s["dataset"] in BIT_TASKS or free is None:
        return
    per_step = (s["batch_size"] * s["hidden"] * s["layers"] * TRAIN_BYTES_PER_UNIT
                + (s["val_size"] + s["test_size"]) * SET_BYTES_PER_STEP)
    steps = sequence_steps(s["dataset"], s["length"])
    if per_step * steps <= share * free:
        return
    fits = int(share * free / per_step) - sequence_steps(s["dataset"], 0)  # T, not its tail
    raise UserError(f"{s['dataset']} at --length {s['length']:,} needs about "
                    f"{per_step * steps / 2**30:.0f} GiB (a training step of "
                    f"{s['batch_size']} rows x {steps:,} steps at hidden {s['hidden']}, and "
                    f"{s['val_size'] + s['test_size']:,} fixed sequences), more than the "
                    f"{free / 2**30:.0f} GiB free; give fewer --batch-size rows, smaller "
                    f"--val-size and --test-size, or --length {max(fits, 1):,} or less")


def has_keep_gate(cell: str) -> bool:
    """Whether ``cell`` has a forget/keep gate with a bias, which ``chrono`` and
    ``forget_bias`` set (lstm, gru, mingru ...; not the Elman cells, lstm_nofg or nas)."""
    from ..cells import available, cell_class

    if cell not in available():
        return False  # build_model says it is unknown
    c = cell_class(cell)
    return any(gate in c.gate_names for gate, _ in c.keep_gates)


def memory_span(dataset: str, length: int) -> int:
    """The longest dependency of a long-memory task, in steps: adding, T (a marker in the
    first step, the answer at the last); copy, T + 10 (a symbol to its copy)."""
    return length + COPY_SYMBOLS if dataset == "copy" else length


def fill_init(s: dict[str, Any]) -> list[str]:
    """The initialisation left ``None``: for adding and copy, ``chrono`` with memory spans up
    to the task's (``memory_span``) for every cell with a forget/keep gate (Tallec & Ollivier
    2018: gates that start out remembering over T steps learn T-step dependencies within
    the budget; torch's default gates forget within a few steps), torch's default for the
    others and for the bit tasks. Returns the names filled; checks what was given."""
    chosen = []
    long_memory = s["dataset"] in ("adding", "copy")
    if "init" not in s:  # a run from before these settings, resumed: it had torch's init
        s.update(init="default", forget_bias=None, chrono_tmax=None)
    if s["init"] is None:
        gated = long_memory and has_keep_gate(s["cell"])
        s["init"], chosen = ("chrono" if gated else "default"), ["init"]
    if s["init"] not in INIT_SCHEMES:
        raise UserError(f"unknown --init {s['init']!r}; choose one of {', '.join(INIT_SCHEMES)}")
    if s["init"] == "chrono" and s.get("chrono_tmax") is None:
        s["chrono_tmax"] = memory_span(s["dataset"], s["length"]) if long_memory else CHRONO_TMAX
        chosen.append("chrono_tmax")
    tmax = s.get("chrono_tmax")
    if tmax is not None and (not isinstance(tmax, int) or isinstance(tmax, bool) or tmax < 2):
        raise UserError(f"--chrono-tmax is the longest memory span in steps, a whole number of "
                        f"at least 2; got {tmax!r}")
    needs = [flag for flag, on in (("--init chrono", s["init"] == "chrono"),
                                   ("--forget-bias", s.get("forget_bias") is not None)) if on]
    if needs and not has_keep_gate(s["cell"]):
        raise UserError(f"{needs[0]} sets the bias of a forget/keep gate, and cell "
                        f"{s['cell']!r} has none: drop it, or use a gated cell (lstm, gru, "
                        "mingru ...)")
    return chosen


def build_model(s: dict[str, Any]) -> SyncedRNN:
    """The model a dataset needs: bits in, 2 classes per step; (value, marker) in, one number
    at the end; symbols in (embedded), blank or symbol per step."""
    shape = {"binary-add": (2, 2, "each"), "parity": (1, 2, "each"), "adding": (2, 1, "last"),
             "copy": (DELIMITER + 1, COPY_ALPHABET + 1, "each")}
    inputs, outputs, readout = shape[s["dataset"]]
    init: dict[str, Any] = {}  # only what differs from torch's, so older runs rebuild alike
    if s.get("init") not in (None, "default"):
        init["init"] = s["init"]
    if s.get("init") == "chrono":
        init["chrono_tmax"] = s.get("chrono_tmax") or CHRONO_TMAX
    if s.get("forget_bias") is not None:
        init["forget_bias"] = float(s["forget_bias"])
    try:
        return SyncedRNN(inputs, outputs, cell=s["cell"], hidden=s["hidden"],
                         layers=s["layers"], embed=s["embed"], readout=readout,
                         backend=s["backend"], dropout=s["dropout"], **init)
    except ValueError as e:  # an init the cell cannot take (identity for a gated cell ...)
        raise UserError(f"{e} (--init)") from e


class SyntheticTask:
    """A generated task for the Trainer (see ``trainer.Task``): fresh batches by step, fixed
    validation and test sets, each dataset's own metrics."""

    name, unit, monitor = "synthetic", "examples", "loss"

    def __init__(self, data: Synthetic, settings: dict[str, Any], dist: D.Dist,
                 device: torch.device):
        self.data, self.s, self.dist, self.device = data, settings, dist, device
        B = settings["batch_size"]
        if B % dist.world:
            raise UserError(f"--batch-size {B} is the global batch: it must divide evenly over "
                            f"the {dist.world} processes; use a multiple of {dist.world}")
        self.local = slice(dist.rank * B // dist.world, (dist.rank + 1) * B // dist.world)
        self.sets = {"val": data.fixed("val", settings["val_size"]),
                     "test": data.fixed("test", settings["test_size"])}

    def batches_per_epoch(self) -> int:
        return math.ceil(EPOCH_EXAMPLES / self.s["batch_size"])

    def start_epoch(self, epoch: int) -> None:
        pass

    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        step = epoch * self.batches_per_epoch() + index
        batch = self.data.batch(step, self.s["batch_size"], self.s["noise"])
        batch = batch.part(self.local).to(self.device)
        return self.loss(model(batch.x), batch.y), len(batch)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """MSE of the last step's number (adding), else cross-entropy per step."""
        if self.data.dataset == "adding":
            return F.mse_loss(out.squeeze(-1).float(), y)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        model.eval()
        sets = self.sets[split]
        if not self.data.is_bits:
            return self._score(model, sets[""])
        if split == "val":
            return self._score(model, sets[""])
        long = self._score(model, sets["long"])
        return {"loss": long["loss"], "bit_accuracy": long["bit_accuracy"],
                f"exact_{self.data.long_bits}bit": long["exact"],
                "exact_heldout": self._score(model, sets["heldout"])["exact"]}

    def _score(self, model: nn.Module, examples: Examples) -> dict[str, float]:
        """The dataset's metrics over a fixed set, in chunks (means over examples)."""
        sums: dict[str, float] = {}
        per_example = examples.x.shape[0] * self.s["hidden"] * self.s["layers"] * 8
        chunk = max(1, min(EVAL_CHUNK, EVAL_BYTES // per_example))  # a long T: fewer at once
        for start in range(0, len(examples), chunk):
            part = examples.part(slice(start, start + chunk)).to(self.device)
            for key, value in self._metrics(model(part.x), part.y).items():
                sums[key] = sums.get(key, 0.0) + value * len(part)
        metrics = {k: v / len(examples) for k, v in sums.items()}
        if self.data.dataset == "adding":
            metrics["mse"] = metrics["loss"]
            metrics["mse_ratio"] = metrics["loss"] / TRIVIAL_ADDING_MSE
        return metrics

    def _metrics(self, out: Tensor, y: Tensor) -> dict[str, float]:
        metrics = {"loss": float(self.loss(out, y))}
        if self.data.dataset == "adding":
            return metrics
        right = out.argmax(-1) == y
        if self.data.dataset == "copy":  # the copied symbols: the last steps
            metrics["accuracy"] = float(right[-COPY_SYMBOLS:].float().mean())
        else:
            metrics["bit_accuracy"] = float(right.float().mean())
            metrics["exact"] = float(right.all(0).float().mean())
        return metrics

    def state_tensors(self) -> dict[str, Tensor]:
        return {}  # nothing is carried between batches

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        pass

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        pass


def solved(summary: dict[str, Any]) -> bool | None:
    """Whether the test shows the task learned: exact on every long input (bit tasks), MSE
    below 1% of the trivial predictor's (adding), 99% of the copied symbols right (copy)."""
    if summary.get("test_mse_ratio") is not None:
        return summary["test_mse_ratio"] < SOLVED_ADDING_RATIO
    if summary.get("test_accuracy") is not None:
        return summary["test_accuracy"] >= SOLVED_COPY_ACCURACY
    exact = summary.get(f"test_exact_{LONG_BITS}bit")
    return None if exact is None else exact == 1.0


def feedforward_contrast(data: Synthetic, test: Examples, steps: int,
                         seed: int) -> dict[str, Any]:
    """Deck 002's contrast: a feed-forward network trained on the same training inputs, scored
    on the held-out test inputs; it has no answer for longer inputs (its input size is fixed)."""
    def vectors(e: Examples) -> tuple[Tensor, Tensor]:
        return e.x[:data.bits].transpose(0, 1).reshape(len(e), -1), e.y.T.float()

    x, y = vectors(data.training_inputs())
    x_test, y_test = vectors(test)
    mlp = BitMLP(x.shape[1], y.shape[1]).fit(x, y, steps=steps, seed=seed)
    right = mlp.predict(x_test) == y_test
    return {"feedforward_input_bits": mlp.inputs, "feedforward_train_examples": len(x),
            "feedforward_parameters": sum(p.numel() for p in mlp.parameters()),
            "test_feedforward_exact_heldout": float(right.all(1).float().mean()),
            "test_feedforward_bit_accuracy_heldout": float(right.float().mean()),
            f"test_feedforward_exact_{data.long_bits}bit": None}  # it cannot read them


def run_synthetic(given: dict[str, Any]) -> dict[str, Any]:
    """Train on a generated task; return the summary (also in ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults,
    those left ``None`` the dataset's (``PER_DATASET``).

    Example:
        >>> s = run_synthetic({"dataset": "parity", "out": "/tmp/parity"})  # doctest: +SKIP
        >>> s["test_exact_1000bit"], s["test_feedforward_exact_heldout"]   # doctest: +SKIP
        (1.0, 0.07)
    """
    s = settings_for(given, DEFAULTS)
    # before launch, which sets the threads (a resumed run has every setting already)
    chosen = fill_dataset_defaults(s)
    return launch(s, partial(_run, chosen=chosen))


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device,
         chosen: list[str]) -> dict[str, Any]:
    run, resume = open_run(s, "synthetic", dist)

    # everything that can fail on the user's input, before anything is written
    train_settings = TrainSettings.from_dict(s)
    seed_everything(s["seed"])
    model = build_model(s)
    own_dropout(dist, s["seed"])
    check_memory(s, D.free_memory(device))
    data = Synthetic(s["dataset"], length=s["length"], bits=s["bits"], seed=s["seed"])
    task = SyntheticTask(data, s, dist, device)

    write_run_files(run, resume, dist, {**s, "resume": None, "model": model.config,
                                        "chosen_for_dataset": chosen})
    extra: dict[str, Any] = {"dataset": s["dataset"], "cell": s["cell"], "out": s["out"]}
    if dist.main:
        extra.update(_baselines(data, task, model, s))
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    summary = trainer.fit()
    if summary["status"] not in ("nonfinite", "interrupted"):
        summary["solved"] = solved(summary)
        run.write_json("summary.json", summary)
    return summary


def _baselines(data: Synthetic, task: SyntheticTask, model: nn.Module,
               s: dict[str, Any]) -> dict[str, Any]:
    """The run's sizes and what doing without a trained recurrent net scores, said on stderr
    (as the language model says its n-gram baseline)."""
    n = sum(p.numel() for p in model.parameters())
    if data.dataset == "adding":
        goal = SOLVED_ADDING_RATIO * TRIVIAL_ADDING_MSE
        say(f"adding, T = {data.length}: {n:,} parameters; always answering 1.0 scores MSE "
            f"{TRIVIAL_ADDING_MSE:.3f}; solved below {goal:.4f}")
        return {"length": data.length, "trivial_mse": TRIVIAL_ADDING_MSE}
    if data.dataset == "copy":
        base = copy_baseline_loss(data.length)
        say(f"copy, T = {data.length}: {n:,} parameters; blanks then a guess score "
            f"{base:.4f} nats per step; solved at {SOLVED_COPY_ACCURACY:.0%} of the copied "
            "symbols right")
        return {"length": data.length, "baseline_loss": base}
    extra: dict[str, Any] = {"bits": data.bits, "long_bits": data.long_bits}
    line = f"{data.dataset}, trained on {data.bits}-bit inputs: {n:,} parameters"
    if s["feedforward_steps"]:
        ff = feedforward_contrast(data, task.sets["test"]["heldout"], s["feedforward_steps"],
                                  s["seed"])
        extra.update(ff)
        line += (f"; a feed-forward network ({ff['feedforward_input_bits']} input bits, "
                 f"{ff['feedforward_train_examples']:,} training inputs): "
                 f"{ff['test_feedforward_exact_heldout']:.1%} exact on held-out "
                 f"{data.bits}-bit inputs, none on {data.long_bits}-bit ones (its input size is "
                 "fixed)")
    say(line)
    return extra
