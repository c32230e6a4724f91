"""`rnnkit train tagger`: a sequence tagger, a tag at every token (DESIGN.md's core flags plus
the task's own)."""

from __future__ import annotations

import argparse
import math
import shlex

EXAMPLES = """examples:
  rnnkit train tagger --out runs/tokens          python-tokens: tag each character of Python
  rnnkit train tagger --dataset python-tokens --cell gru --hidden 64 --steps 500
  rnnkit train tagger --conll train.txt --val dev.txt --test test.txt --out runs/ner
  rnnkit train tagger --conll tagged.conll --embeddings glove.6B.100d.txt --freeze-embeddings
  echo "def f(x): return x" | rnnkit predict runs/tokens       then tag new text
"""


def add_parser(tasks, common: dict) -> None:
    from ..data.tagged import TAGGED_DATASETS
    from ..train.tagger import DEFAULTS as d
    from .train import run_flags, training_flags

    p = tasks.add_parser("tagger", help="a sequence tagger: a tag for every token",
                         description="Train a sequence tagger (synced many-to-many: a "
                         "recurrent network, bidirectional by default, reads a sequence and a "
                         "linear layer tags every token) on the built-in Python token classes "
                         "or your own CoNLL-style files, beside a most-frequent-tag baseline.",
                         epilog=EXAMPLES, **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"built-in: {', '.join(TAGGED_DATASETS)} (every character "
                   "of standard-library Python files tagged name, keyword, string, number, "
                   "comment, operator or whitespace; fixed split by file; the default when no "
                   "--conll)")
    g.add_argument("--conll", metavar="PATH", help="your data: one token a line, the token "
                   "first and its tag last (whitespace between), a blank line between "
                   "sentences")
    g.add_argument("--val", metavar="PATH", help="held-out sentences (same format) for "
                   "validation (default: --val-fraction of --conll)")
    g.add_argument("--test", metavar="PATH", help="held-out sentences for the test scores")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help=f"of the sentences of --conll, drawn with --seed ({d['val_fraction']})")
    g.add_argument("--test-fraction", type=float, metavar="F", help=f"({d['test_fraction']})")
    g.add_argument("--max-chars", type=int, metavar="N", help="python-tokens: training "
                   f"characters ({d['max_chars']:,}; a tenth of that for val and for test)")
    g.add_argument("--seq-len", type=int, metavar="N", help="longest sequence: python-tokens "
                   f"files are cut at line ends into pieces this long, longer sentences into "
                   f"pieces ({d['seq_len']})")
    g.add_argument("--vocab-size", type=int, metavar="N",
                   help="keep the N most frequent training words (default: all)")
    g.add_argument("--baseline", action=argparse.BooleanOptionalAction,
                   help="score the most-frequent-tag baseline (on)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=f"recurrent cell ({d['cell']}); see rnnkit cells")
    g.add_argument("--embed", type=int, metavar="N", help=f"embedding size ({d['embed']}; with "
                   "--embeddings the vectors' size)")
    g.add_argument("--embeddings", metavar="PATH", help="start the embedding from pretrained "
                   "word vectors (word2vec or GloVe text format; with --conll)")
    g.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction,
                   help="keep the pretrained vectors as they are (off: fine-tune them)")
    g.add_argument("--hidden", type=int, metavar="N", help=f"hidden size ({d['hidden']})")
    g.add_argument("--layers", type=int, metavar="N", help=f"stacked layers ({d['layers']})")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                   help="read each sequence both ways, so each tag sees what follows (on)")
    g.add_argument("--dropout", type=float, metavar="P", help=f"({d['dropout']})")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help=f"sequences a step ({d['batch_size']})")
    g = training_flags(p, d)
    g.add_argument("--eval-examples", type=int, metavar="N",
                   help="validation sequences the periodic evaluations score (0: all; "
                   f"{d['eval_examples']:,}); the final scores read every held-out sequence")
    run_flags(p, "tagger")


def train(given: dict) -> dict:
    from ..train.tagger import run_tagger

    return run_tagger(given)


def report(s: dict) -> str:
    def num(key: str) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    out = s["out"]
    return "\n".join([
        f"run:        {out}  ({s['status']}, {s['steps']} steps, {s['train_seconds']:.0f} s, "
        f"{s['tokens_per_second']:,.0f} tokens/s)",
        f"val:        accuracy {num('val_accuracy')}, macro-F1 {num('val_macro_f1')}   "
        f"(most-frequent-tag baseline {num('val_baseline_accuracy')}, "
        f"{num('val_baseline_macro_f1')})",
        f"test:       accuracy {num('test_accuracy')}, macro-F1 {num('test_macro_f1')}   "
        f"(most-frequent-tag baseline {num('test_baseline_accuracy')}, "
        f"{num('test_baseline_macro_f1')})",
        f"confusion:  {shlex.quote(out)}/confusion.txt",
        f"predict:    rnnkit predict {shlex.quote(out)} < FILE      (one line of tags per line)",
    ])
