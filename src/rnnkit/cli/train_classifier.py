"""`rnnkit train classifier`: a sequence classifier on labelled texts, or on scores'
piano rolls (``--dataset music-genre``) (DESIGN.md's core flags plus the task's own)."""

from __future__ import annotations

import argparse
import math
import shlex

EXAMPLES = """examples:
  rnnkit train classifier --dataset sentiment --out runs/sentiment     deck 003's tweets
  rnnkit train classifier --dataset sentiment --cell gru --hidden 140 --no-bidirectional
  rnnkit train classifier --csv reviews.csv --text-column review --label-column stars
  rnnkit train classifier --csv train.tsv --val dev.tsv --test test.tsv --class-weights balanced
  rnnkit train classifier --csv rows.csv --tokenizer word --embeddings glove.6B.100d.txt
  rnnkit predict runs/sentiment --csv new.csv --text-column text      then label new rows
  rnnkit train classifier --dataset music-genre --out runs/genre   deck 000's genre from a score
"""


def add_parser(tasks, common: dict) -> None:
    from ..data.labelled import LABELLED_DATASETS, MUSIC_DATASET
    from ..data.tokenizers import KINDS
    from ..models.classifier import READOUTS
    from ..train.classifier import CLASS_WEIGHTS
    from ..train.classifier import DEFAULTS as d
    from .train import run_flags, training_flags

    p = tasks.add_parser("classifier", help="a sequence classifier on labelled texts",
                         description="Train a sequence classifier (many-to-one: a recurrent "
                         "network reads a text, a readout and a linear layer give its label) on "
                         "a built-in data set or your own CSV or TSV file, beside a TF-IDF + "
                         "logistic-regression baseline on the same split.", epilog=EXAMPLES,
                         **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"built-in rows: {', '.join(LABELLED_DATASETS)} (3-class "
                   f"tweets, fixed split; the default when no --csv) or {MUSIC_DATASET} (piano "
                   "rolls of music21's corpus: baroque, folk, renaissance; parsed once, cached "
                   "in ~/.cache/rnnkit or $RNNKIT_CACHE)")
    g.add_argument("--max-pieces", type=int, metavar="N", help="music-genre: pieces a genre, "
                   "the same fixed choice on every machine (200; the first run parses them, "
                   "about 1-2 minutes)")
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
                   help=f"of each class's rows of --csv, drawn with --seed ({d['val_fraction']})")
    g.add_argument("--test-fraction", type=float, metavar="F", help=f"({d['test_fraction']})")
    g.add_argument("--tokenizer", choices=KINDS, help="bpe (default: subwords, never an "
                   "unknown token), char or word")
    g.add_argument("--vocab-size", type=int, metavar="N",
                   help="for word and bpe tokenizers (10,000 words; 1,000 BPE tokens)")
    g.add_argument("--max-length", type=int, metavar="N",
                   help=f"read at most the first N tokens of a text ({d['max_length']}; "
                   "music-genre: N eighth-note steps of a piece, 256)")
    g.add_argument("--class-weights", choices=CLASS_WEIGHTS,
                   help="balanced: weight each class by n / (classes x its rows), for "
                   "imbalanced labels, and keep the checkpoint of the best macro-F1 (default "
                   "none: the best accuracy)")
    g.add_argument("--baseline", action=argparse.BooleanOptionalAction,
                   help="fit the TF-IDF + logistic-regression baseline (on)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=f"recurrent cell ({d['cell']}); see rnnkit cells")
    g.add_argument("--embed", type=int, metavar="N", help=f"embedding size ({d['embed']}; with "
                   "--embeddings the vectors' size)")
    g.add_argument("--embeddings", metavar="PATH", help="start the embedding from pretrained "
                   "word vectors (word2vec or GloVe text format; with --tokenizer word)")
    g.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction,
                   help="keep the pretrained vectors as they are (off: fine-tune them)")
    g.add_argument("--hidden", type=int, metavar="N", help=f"hidden size ({d['hidden']})")
    g.add_argument("--layers", type=int, metavar="N", help=f"stacked layers ({d['layers']})")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                   help="read each text both ways (on)")
    g.add_argument("--readout", choices=READOUTS,
                   help="what the label is read from: the last state, the mean or max over "
                   f"the steps, or attention pooling ({d['readout']})")
    g.add_argument("--dropout", type=float, metavar="P", help=f"({d['dropout']})")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N", help=f"rows a step ({d['batch_size']})")
    g = training_flags(p, d)
    g.add_argument("--eval-examples", type=int, metavar="N",
                   help="validation rows the periodic evaluations score (0: all; "
                   f"{d['eval_examples']:,}); the final scores read every held-out row")
    run_flags(p, "classifier")


def train(given: dict) -> dict:
    from ..train.classifier import run_classifier

    return run_classifier(given)


def report(s: dict) -> str:
    def num(key: str) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    out = s["out"]
    music = s.get("input") == "piano-roll"
    base = "pitch-class LR" if music else "TF-IDF baseline"
    lines = [
        f"run:        {out}  ({s['status']}, {s['steps']} steps, {s['train_seconds']:.0f} s, "
        f"{s['examples_per_second']:,.0f} rows/s)",
        f"val:        accuracy {num('val_accuracy')}, macro-F1 {num('val_macro_f1')}   "
        f"({base} {num('val_baseline_accuracy')}, {num('val_baseline_macro_f1')})",
        f"test:       accuracy {num('test_accuracy')}, macro-F1 {num('test_macro_f1')}   "
        f"({base} {num('test_baseline_accuracy')}, {num('test_baseline_macro_f1')})",
        f"confusion:  {shlex.quote(out)}/confusion.txt",
    ]
    if music:
        lines.append(f"predict:    rnnkit.load({out!r}).predict(['score.mxl'])")
    else:
        lines.append(f"predict:    rnnkit predict {shlex.quote(out)} --csv FILE --text-column "
                     f"{shlex.quote(s.get('text_column', 'text'))}")
    return "\n".join(lines)
