"""`rnnkit train generator`: a language model started by a label, one-to-many (DESIGN.md's core
flags plus the task's own)."""

from __future__ import annotations

import argparse
import math
import shlex

EXAMPLES = """examples:
  rnnkit train generator --dataset sentiment --out runs/tweets     tweets for a chosen mood
  rnnkit train generator --csv quotes.csv --text-column quote --label-column author
  rnnkit train generator --dataset sentiment --cell gru --no-every-step --max-time 600
  rnnkit sample runs/tweets --label positive --count 5 --temperature 0.8   then write some
  rnnkit train generator --dataset music-genre --out runs/tunes   melodies of three genres
  rnnkit sample runs/tunes --label folk --out tune.mid             a folk tune as MIDI
"""


def add_parser(tasks, common: dict) -> None:
    from ..data.labelled import LABELLED_DATASETS
    from ..data.tokenizers import KINDS
    from ..train.generator import DEFAULTS as d
    from .train import regulariser_flags, run_flags, training_flags

    p = tasks.add_parser("generator", help="a language model that writes text for a label",
                         description="Train a conditioned language model (one-to-many: the "
                         "label gives the recurrent stack its initial state, as an image starts "
                         "a caption, and by default joins every step's input; the model writes "
                         "a text from it) on labelled texts: "
                         "a built-in data set or your own CSV or TSV file. The summary compares "
                         "the held-out texts' bits per character under their own label and "
                         "under the wrong ones; samples.txt holds samples per label.",
                         epilog=EXAMPLES, **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"built-in rows: {', '.join(LABELLED_DATASETS)} (3-class "
                   "tweets, fixed split; the default when no --csv) or music-genre (the "
                   "melodies of music21's Bach chorales, folk tunes and Renaissance pieces as "
                   "note events; sample one as MIDI with rnnkit sample --out)")
    g.add_argument("--max-pieces", type=int, metavar="N", help="music-genre: pieces a genre "
                   "(200; the first run parses them, about 1-2 minutes, then they are cached)")
    g.add_argument("--csv", metavar="PATH", help="your rows: a CSV or TSV file with a header "
                   "row (comma, tab, semicolon or bar, as the header shows; .tsv: tab)")
    g.add_argument("--text-column", metavar="C", help=f"({d['text_column']})")
    g.add_argument("--label-column", metavar="L", help=f"({d['label_column']})")
    g.add_argument("--encoding", metavar="E", help="of --csv, --val and --test (utf-8; e.g. "
                   "latin-1)")
    g.add_argument("--val", metavar="PATH", help="held-out rows (same columns) for validation "
                   "(default: --val-fraction of --csv)")
    g.add_argument("--test", metavar="PATH", help="held-out rows for the test scores")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help=f"of each label's rows of --csv, drawn with --seed ({d['val_fraction']})")
    g.add_argument("--test-fraction", type=float, metavar="F", help=f"({d['test_fraction']})")
    g.add_argument("--tokenizer", choices=KINDS, help="char (default: short texts, nothing "
                   "unknown, samples can spell anything), word or bpe")
    g.add_argument("--vocab-size", type=int, metavar="N", help="for word and bpe tokenizers")
    g.add_argument("--max-length", type=int, metavar="N",
                   help=f"model at most the first N tokens of a text ({d['max_length']})")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=f"recurrent cell ({d['cell']}); see rnnkit cells")
    g.add_argument("--embed", type=int, metavar="N", help="token embedding size (default: by "
                   "the training texts' size, as rnnkit train lm chooses it)")
    g.add_argument("--hidden", type=int, metavar="N", help="hidden size (default: by the "
                   "training texts' size, narrower where --max-time buys few steps on this "
                   "machine; config.json records what was chosen)")
    g.add_argument("--layers", type=int, metavar="N",
                   help=f"stacked layers, each started by the label ({d['layers']})")
    g.add_argument("--dropout", type=float, metavar="P",
                   help="(default: by the training texts' size)")
    regulariser_flags(g)
    g.add_argument("--every-step", action=argparse.BooleanOptionalAction,
                   help="also feed the label at every step, not only as the initial state "
                   "(on: the texts depend on the label more; off: the captioning form, the "
                   "label's state at the start alone)")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help="texts a step (default: about 4,096 tokens of texts of the mean "
                   "length, 8 to 64 texts)")
    g = training_flags(p, d, lr_help="learning rate (default: by the training texts' size)")
    g.add_argument("--eval-examples", type=int, metavar="N",
                   help="validation texts the periodic evaluations score (0: all; "
                   f"{d['eval_examples']:,}); the final scores read every held-out text")
    g = p.add_argument_group("samples")
    g.add_argument("--samples-per-label", type=int, metavar="N",
                   help=f"texts written per label into samples.txt ({d['samples_per_label']})")
    g.add_argument("--sample-length", type=int, metavar="N",
                   help=f"at most N tokens a sample ({d['sample_length']})")
    g.add_argument("--temperature", type=float, metavar="T",
                   help=f"of the samples ({d['temperature']})")
    run_flags(p, "generator")


def train(given: dict) -> dict:
    from ..train.generator import run_generator

    return run_generator(given)


def report(s: dict) -> str:
    def num(key: str) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    out = s["out"]
    split = "test" if s.get("test_own_label_bpc") is not None else "val"
    lines = [
        f"run:        {out}  ({s['status']}, {s['steps']} steps, {s['train_seconds']:.0f} s, "
        f"{s['tokens_per_second']:,.0f} tokens/s)",
        f"val bpc:    {num('val_bpc')}" + (f"   (character 5-gram baseline, no label: "
                                            f"{num('val_ngram_bpc')})"
                                            if s.get("val_ngram_bpc") is not None else ""),
        f"test bpc:   {num('test_bpc')}   (" + ", ".join(
            f"{label} {num(f'test_bpc_label_{label}')}" for label in s.get("labels", []))
        + (f"; 5-gram baseline {num('test_ngram_bpc')}" if s.get("test_ngram_bpc") is not None
           else "") + ")",
        f"label:      {split} bpc under the own label {num(f'{split}_own_label_bpc')}, under a "
        f"wrong one {num(f'{split}_wrong_label_bpc')}; the own label is the likeliest for "
        f"{num(f'{split}_label_accuracy')} of the texts",
    ]
    for label in s.get("labels", []):
        if f"sample_label_{label}" in s:
            lines.append(f"{label + ':':<11} {s[f'sample_label_{label}']}")
    if s.get("samples"):
        lines.append(f"samples:    {s['samples']}")
    if s.get("labels"):
        lines.append(f"sample it:  rnnkit sample {shlex.quote(out)} --label "
                     f"{shlex.quote(s['labels'][0])} --count 5")
    lines += [f"note:       {w}" for w in s.get("warnings", [])]
    return "\n".join(lines)
