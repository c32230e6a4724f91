"""`rnnkit train seq2seq`: an encoder-decoder with attention on pairs (DESIGN.md's core flags
plus the task's own)."""

from __future__ import annotations

import argparse
import math
import shlex

EXAMPLES = """examples:
  rnnkit train seq2seq --dataset addition --digits 3 --reverse --out runs/add3
  rnnkit train seq2seq --dataset dates --max-time 600
  rnnkit train seq2seq --tsv pairs.tsv --max-time 240      your own source<TAB>target lines
  rnnkit train seq2seq --tsv pairs.tsv --attention none     the plain encoder-decoder
  rnnkit translate runs/add3 "16+535"                      then decode with the trained run
"""


def add_parser(tasks, common: dict) -> None:
    from ..data.pairs import PAIR_DATASETS
    from ..data.vocab import KINDS
    from ..models.seq2seq import ATTENTIONS
    from ..train.seq2seq import DEFAULTS as d
    from .train import run_flags, training_flags

    p = tasks.add_parser("seq2seq", help="an encoder-decoder with attention on pairs",
                         description="Train an encoder-decoder (a recurrent encoder, a decoder "
                         "with attention) to map source sequences to target sequences: a "
                         "built-in data set or your own TSV of pairs, beside a nearest-"
                         "training-pair baseline.", epilog=EXAMPLES,
                         **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"built-in pairs: {', '.join(PAIR_DATASETS)} (default "
                   "addition when no --tsv)")
    g.add_argument("--tsv", metavar="PATH", help="your pairs: one source<TAB>target a line, "
                   "UTF-8")
    g.add_argument("--header", action=argparse.BooleanOptionalAction,
                   help="the first line of each TSV is a header, not a pair (default: only "
                   "when it holds column names such as source<TAB>target; stderr says so)")
    g.add_argument("--val", metavar="PATH", help="held-out pairs (TSV) for validation "
                   "(default: --val-fraction of --tsv)")
    g.add_argument("--test", metavar="PATH", help="held-out pairs (TSV) for the test scores")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help=f"of --tsv's pairs, shuffled with --seed ({d['val_fraction']})")
    g.add_argument("--test-fraction", type=float, metavar="F", help=f"({d['test_fraction']})")
    g.add_argument("--digits", type=int, metavar="N",
                   help=f"addition: operands of up to N digits ({d['digits']})")
    g.add_argument("--reverse", action=argparse.BooleanOptionalAction,
                   help="addition: read the question reversed (the Keras example's trick)")
    g.add_argument("--tokens", choices=KINDS, help="char (default) or word tokens, each side")
    g.add_argument("--vocab-size", type=int, metavar="N",
                   help="keep the N most frequent tokens of each side (default: all)")
    g.add_argument("--max-length", type=int, metavar="N", help="the decoder's limit in tokens "
                   "(default: 1.5 times the longest target)")
    g.add_argument("--baseline", action=argparse.BooleanOptionalAction,
                   help="score the nearest-training-pair baseline: each held-out source gets "
                   "the target of the most similar training source (on)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=f"recurrent cell ({d['cell']}); see rnnkit cells")
    g.add_argument("--embed", type=int, metavar="N", help=f"embedding size ({d['embed']})")
    g.add_argument("--hidden", type=int, metavar="N", help=f"hidden size ({d['hidden']})")
    g.add_argument("--layers", type=int, metavar="N",
                   help=f"layers of the encoder and of the decoder ({d['layers']})")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                   help="a bidirectional encoder (on)")
    g.add_argument("--residual", action=argparse.BooleanOptionalAction,
                   help="GNMT's residual connections between layers (off)")
    g.add_argument("--attention", choices=ATTENTIONS,
                   help="bahdanau (additive, the default), dot or general (Luong), or none "
                   "(the context is the encoder's final state)")
    g.add_argument("--dropout", type=float, metavar="P", help=f"({d['dropout']})")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N", help=f"pairs a step ({d['batch_size']})")
    g = training_flags(p, d)
    g.add_argument("--eval-examples", type=int, metavar="N",
                   help="pairs the periodic evaluations decode (0: all; "
                   f"{d['eval_examples']:,}); the final scores decode every held-out pair")
    run_flags(p, "seq2seq")


def train(given: dict) -> dict:
    from ..train.seq2seq import run_seq2seq

    return run_seq2seq(given)


def report(s: dict) -> str:
    def pct(key: str) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"

    def scores(split: str) -> str:
        line = f"{pct(split + '_exact')} exact   ({pct(split + '_accuracy')} of tokens)"
        if split + "_nearest_exact" not in s:  # --no-baseline
            return line
        return (line + f"   nearest training pair {pct(split + '_nearest_exact')} exact "
                f"({pct(split + '_nearest_accuracy')} of tokens)")

    out = s["out"]
    return "\n".join([
        f"run:        {out}  ({s['status']}, {s['steps']} steps, {s['train_seconds']:.0f} s, "
        f"{s['examples_per_second']:,.0f} pairs/s)",
        f"val:        {scores('val')}",
        f"test:       {scores('test')}",
        f"translate:  rnnkit translate {shlex.quote(out)} \"...\" --show-attention",
    ])
