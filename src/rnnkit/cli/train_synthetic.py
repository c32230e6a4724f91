"""`rnnkit train synthetic`: generated tasks, deck 002's binary addition and parity and the
long-term-dependency tests, adding and copy (DESIGN.md's core flags plus the tasks' own)."""

from __future__ import annotations

import math
import shlex

EXAMPLES = """examples:
  rnnkit train synthetic --dataset binary-add        8-bit sums, then exact on 1,000-bit ones
  rnnkit train synthetic --dataset parity --cell lstm --hidden 32
  rnnkit train synthetic --dataset adding --length 200              an LSTM, 2,300 steps
  rnnkit train synthetic --dataset adding --length 200 --cell gru --max-time 120
  rnnkit train synthetic --dataset copy --length 50 --cell rnn_tanh --clip 0
  rnnkit bench memory --quick                        which cell learns which length

defaults by dataset: binary-add and parity: rnn_tanh, 16 units, lr 0.01, 2,000 steps (seconds);
adding and copy: T = 50, lstm with chrono gates spanning T (any cell with a forget/keep gate;
torch's init for the others), adding 64 units, lr 0.005, 1,500 steps at T = 50 to 3,000 at
T = 500; copy 128 units, lr 0.01, 4,000 steps at T = 50 to 1,300 at T = 500
"""


def add_parser(tasks, common: dict) -> None:
    from ..data.synthetic import DATASETS, LONG_BITS, MAX_BITS
    from ..layers.init import SCHEMES as INIT_SCHEMES
    from ..train.synthetic import DEFAULTS as d
    from ..train.synthetic import PER_DATASET
    from .train import run_flags, training_flags

    p = tasks.add_parser("synthetic", help="generated tasks: binary addition, parity, adding, "
                         "copy", description="Train a recurrent network on a generated task: "
                         "deck 002's binary addition and parity (bit streams, least significant "
                         f"bit first, tested on {LONG_BITS:,}-bit inputs beside a feed-forward "
                         "network), or the adding problem and the copy task over T steps.",
                         epilog=EXAMPLES, **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"{', '.join(DATASETS)} (default {d['dataset']})")
    g.add_argument("--bits", type=int, metavar="N", help="binary-add, parity: training inputs "
                   f"of up to N bits (1 to {MAX_BITS}; {PER_DATASET['parity']['bits']})")
    g.add_argument("--length", "--seq-len", type=int, metavar="T", dest="length",
                   help="adding, copy: the span to remember "
                   f"({PER_DATASET['adding']['length']}; --seq-len is the same)")
    g.add_argument("--noise", type=float, metavar="SIGMA",
                   help="binary-add, parity: Gaussian noise on the training input bits "
                   f"(parity {PER_DATASET['parity']['noise']}, binary-add 0)")
    g.add_argument("--val-size", type=int, metavar="N", help=f"validation examples "
                   f"({d['val_size']:,})")
    g.add_argument("--test-size", type=int, metavar="N", help=f"test examples "
                   f"({d['test_size']:,}; the bit tasks: that many {LONG_BITS:,}-bit inputs and "
                   "held-out inputs of the training size)")
    g.add_argument("--feedforward-steps", type=int, metavar="N",
                   help="binary-add, parity: Adam steps of the feed-forward contrast (0: none; "
                   f"{d['feedforward_steps']:,})")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help="recurrent cell (rnn_tanh for the bit tasks, lstm for adding "
                   "and copy); see rnnkit cells")
    g.add_argument("--hidden", type=int, metavar="N", help="hidden size (16 for the bit tasks, "
                   f"{PER_DATASET['adding']['hidden']} for adding, "
                   f"{PER_DATASET['copy']['hidden']} for copy)")
    g.add_argument("--layers", type=int, metavar="N", help=f"stacked layers ({d['layers']})")
    g.add_argument("--dropout", type=float, metavar="P", help="between stacked layers "
                   f"({d['dropout']})")
    g.add_argument("--embed", type=int, metavar="N", help="copy: symbol embedding size "
                   f"({PER_DATASET['copy']['embed']})")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g.add_argument("--init", choices=INIT_SCHEMES, help="initialisation (adding and copy: chrono "
                   "for cells with a forget/keep gate, its spans up to the task's, else "
                   "default; the bit tasks: default)")
    g.add_argument("--chrono-tmax", type=int, metavar="T", help="--init chrono: the longest "
                   "memory span in steps (adding: T; copy: T + 10)")
    g.add_argument("--forget-bias", type=float, metavar="B", help="set the forget/keep gate's "
                   "bias after the init, e.g. 1.0 (Jozefowicz et al. 2015)")
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N", help="examples a step, drawn fresh "
                   f"({PER_DATASET['adding']['batch_size']})")
    training_flags(p, d, lr_help="learning rate (0.01 for the bit tasks, "
                   f"{PER_DATASET['adding']['lr']:g} for adding, {PER_DATASET['copy']['lr']:g} "
                   "for copy)")
    run_flags(p, "synthetic")


def train(given: dict) -> dict:
    from ..train.synthetic import run_synthetic

    return run_synthetic(given)


def report(s: dict) -> str:
    def num(key: str, form: str) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, form)

    out = s["out"]
    lines = [f"run:        {out}  ({s['status']}, {s['steps']} steps, {s['train_seconds']:.0f} s, "
             f"{s['examples_per_second']:,.0f} examples/s)"]
    if s["dataset"] == "adding":
        lines += [f"test MSE:   {num('test_mse', '.4f')}  ({num('test_mse_ratio', '.2%')} of "
                  f"always answering 1.0: {num('trivial_mse', '.3f')})"]
    elif s["dataset"] == "copy":
        lines += [f"test:       {num('test_accuracy', '.1%')} of the copied symbols right, loss "
                  f"{num('test_loss', '.4f')} (memoryless baseline "
                  f"{num('baseline_loss', '.4f')})"]
    else:
        long = f"{s['long_bits']}bit"
        lines.append(
            f"test:       {num(f'test_exact_{long}', '.1%')} of {s['long_bits']:,}-bit inputs "
            f"exact ({num('test_bit_accuracy', '.4%')} of bits); "
            f"{num('test_exact_heldout', '.1%')} of held-out {s['bits']}-bit inputs")
        if "test_feedforward_exact_heldout" in s:
            lines.append(
                f"feed-fwd:   {num('test_feedforward_exact_heldout', '.1%')} of held-out "
                f"{s['bits']}-bit inputs exact; none of {s['long_bits']:,}-bit ones: its input "
                f"is fixed at {s['feedforward_input_bits']} bits")
    solved = "yes" if s.get("solved") else (
        f"no (to train further: rnnkit train synthetic --resume {shlex.quote(out)} with a "
        "larger --steps or --max-time)")
    lines.append(f"solved:     {solved}")
    return "\n".join(lines)
