"""`rnnkit train word2vec`: word vectors by skip-gram or CBOW (deck 001), with the core flags
that apply (``--embed`` is the vectors' size) plus word2vec's own."""

from __future__ import annotations

import argparse
import math
import shlex

EXAMPLES = """examples:
  rnnkit train word2vec --out runs/wiki             the Wikipedia extract, 5 epochs (~1 min)
  rnnkit train word2vec --dataset python-docs --min-count 3 --out runs/docs
  rnnkit train word2vec --text notes.txt --architecture cbow --embed 50 --window 3
  rnnkit embed runs/wiki --neighbours king          then use the vectors
  rnnkit embed runs/wiki --analogy king man woman
"""


def add_parser(tasks, common: dict) -> None:
    from ..train.word2vec import DEFAULTS as d
    from ..train.word2vec import ENGINES
    from .train import run_flags

    p = tasks.add_parser("word2vec", help="word vectors: skip-gram or CBOW (word2vec)",
                         description="Train word vectors (word2vec: skip-gram or CBOW, negative "
                         "sampling or a full softmax) on a built-in corpus or your text, and "
                         "score them on WordSim-353, SimLex-999 and the Google analogies. "
                         "Training is SGD with the rate falling linearly to --min-lr, in "
                         "word2vec's own compiled Hogwild loop on the CPU (a step is a chunk "
                         "of --chunk-words words) or in batches of pairs on a GPU.",
                         epilog=EXAMPLES, **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="built-in corpus: wiki (default: the Wikipedia extract in "
                   "gensim's test data, markup stripped), python-docs, python-source, hello")
    g.add_argument("--text", metavar="PATH", help="your own text: a file, directory or glob "
                   "(a paragraph is a sentence; a line is, in a file of one document a line)")
    g.add_argument("--max-chars", type=int, metavar="N", help="use at most N leading characters")
    g.add_argument("--val", metavar="PATH", help="held-out text for the validation loss "
                   "(default: a fixed sample of the training text)")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help=f"hold out the last F of the sentences instead ({d['val_fraction']})")
    g.add_argument("--min-count", type=int, metavar="N",
                   help=f"drop words seen fewer times ({d['min_count']})")
    g.add_argument("--max-vocab", type=int, metavar="N", help="keep at most the N most "
                   "frequent words (all)")
    g.add_argument("--sample", type=float, metavar="S", help="subsample frequent words: keep "
                   f"a word of share f with chance (sqrt(f/S)+1) S/f ({d['sample']:g}; 0: off)")
    g = p.add_argument_group("model")
    g.add_argument("--architecture", choices=("skipgram", "cbow"),
                   help="skipgram (default: each word predicts its neighbours) or cbow (the "
                   "neighbours' mean predicts the word)")
    g.add_argument("--embed", "--dim", type=int, metavar="N", dest="embed",
                   help=f"vector size ({d['embed']})")
    g.add_argument("--window", type=int, metavar="N",
                   help=f"neighbours each side ({d['window']})")
    g.add_argument("--dynamic-window", action=argparse.BooleanOptionalAction,
                   help="each word looks a random 1..N words each way (on: near words count "
                   "more)")
    g.add_argument("--negative", type=int, metavar="K", help=f"negative samples a pair "
                   f"({d['negative']})")
    g.add_argument("--loss", choices=("auto", "negative", "softmax"),
                   help="negative sampling, or the full softmax (auto: softmax below 1,000 words)")
    g = p.add_argument_group("inner loop")
    g.add_argument("--engine", choices=ENGINES, help="compiled (the C++ Hogwild loop, CPU), "
                   "torch (vectorised batches, CPU or GPU); auto: compiled on the CPU")
    g.add_argument("--workers", type=int, metavar="N", help="threads of the compiled loop "
                   "(default: the CPU cores)")
    g.add_argument("--chunk-words", type=int, metavar="N",
                   help=f"words a Trainer step trains ({d['chunk_words']:,})")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help=f"pairs an update of the torch engine ({d['batch_size']})")
    g = p.add_argument_group("training")
    g.add_argument("--lr", type=float, metavar="X", help="starting rate (skipgram 0.025, "
                   "cbow 0.05)")
    g.add_argument("--min-lr", type=float, metavar="X", help=f"final rate ({d['min_lr']:g})")
    g.add_argument("--epochs", type=int, metavar="N", help=f"budget in epochs ({d['epochs']})")
    g.add_argument("--steps", type=int, metavar="N", help="budget in steps (chunks)")
    g.add_argument("--max-time", type=float, metavar="SECONDS", help="budget in seconds "
                   "(with --epochs or --steps, whichever ends first; the rate falls over it)")
    g.add_argument("--eval-every", type=int, metavar="N", help="evaluate every N steps")
    g.add_argument("--log-every", type=int, metavar="N", help=f"({d['log_every']})")
    g.add_argument("--checkpoint-every", type=int, metavar="N",
                   help=f"resumable checkpoint every N steps ({d['checkpoint_every']})")
    g.add_argument("--seed", type=int, metavar="N")
    g.add_argument("--device", help="auto (default: CUDA when present), cpu or cuda")
    g.add_argument("--threads", type=int, metavar="N", help="torch's CPU threads (evaluation)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="the progress bar on stderr (on)")
    run_flags(p, "word2vec")


def train(given: dict) -> dict:
    from ..train.word2vec import run_word2vec

    if "epochs" not in given and ("steps" in given or "max_time" in given):
        given = {**given, "epochs": None}  # a budget given alone is the whole budget
    return run_word2vec(given)


def report(s: dict) -> str:
    from ..embeddings import pair_score_text

    def num(key: str, digits: int = 3) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else \
            f"{v:.{digits}f}"

    def pair(name: str) -> str:  # "not measured" under MIN_PAIRS pairs
        return pair_score_text(s.get(f"test_{name}"), s.get(f"test_{name}_pairs"))

    out = shlex.quote(s["out"])
    return "\n".join([
        f"run:        {s['out']}  ({s['status']}, {s['epochs']:.1f} epochs, "
        f"{s['train_seconds']:.0f} s, {s['tokens_per_second']:,.0f} words/s, {s['engine']})",
        f"vocabulary: {s['vocab_size']:,} words; val loss {num('val_loss')}",
        f"similarity: WordSim-353 {pair('wordsim353')}, SimLex-999 {pair('simlex999')}",
        f"analogies:  accuracy {num('test_analogy_accuracy')} on "
        f"{s.get('test_analogy_questions', 0):,} questions ({s.get('test_analogy_skipped', 0):,} "
        "skipped: a word outside the vocabulary)",
        f"use them:   rnnkit embed {out} --neighbours WORD; --export vectors.txt",
    ])
