"""`rnnkit embed RUN_DIR`: use word vectors (a word2vec run, or a word2vec text file given to
``--import``): nearest neighbours, analogies, the standard scores, export, a PCA plot.

Ranked words print one a line, ``word<TAB>cosine``, the query words left out (``--json``: one
JSON object). Several actions may be given at once; they run in the order of the flags below.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  rnnkit embed runs/wiki --neighbours king             the 10 nearest words
  rnnkit embed runs/wiki --analogy king man woman      king - man + woman: queen?
  rnnkit embed runs/wiki --evaluate                    WordSim-353, SimLex-999, analogies
  rnnkit embed runs/wiki --export vectors.txt          word2vec text format (gensim reads it)
  rnnkit embed --import vectors.txt --neighbours paris  vectors from a file instead of a run
  rnnkit embed runs/wiki --plot king,queen,man,woman,paris,france,london,england
"""


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="use word vectors: neighbours, analogies, export, plot",
                       description="Use the word vectors of a word2vec run (rnnkit train "
                       "word2vec --out DIR) or of a word2vec text file (--import FILE).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a word2vec run directory")
    p.add_argument("--checkpoint", default="best", choices=("best", "last", "init"),
                   help="which of the run's checkpoints (best)")
    p.add_argument("--import", dest="import_file", metavar="FILE",
                   help="read the vectors from a word2vec text file instead of a run")
    p.add_argument("--neighbours", "--neighbors", metavar="WORD", help="the words nearest WORD")
    p.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"),
                   help="the words nearest A - B + C (king man woman -> queen)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="words listed (10)")
    p.add_argument("--evaluate", action="store_true", help="WordSim-353 and SimLex-999 "
                   "Spearman, and the analogy accuracy (with the questions skipped)")
    p.add_argument("--export", metavar="FILE", help="write the vectors in word2vec text format")
    p.add_argument("--plot", metavar="WORDS", help="comma-separated words: a PNG of their "
                   "vectors projected on two principal components")
    p.add_argument("--plot-file", metavar="FILE", help="where the plot goes (RUN_DIR/words.png, "
                   "or words.png beside --import's file)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..embeddings import Embeddings, load_embeddings, pair_score_text
    from ..errors import UserError

    if bool(args.run) == bool(args.import_file):
        raise UserError("give a word2vec run directory or --import FILE (one of them)")
    if args.top < 1:
        raise UserError(f"--top must be a positive number of words, got {args.top}")
    if not (args.neighbours or args.analogy or args.evaluate or args.export or args.plot):
        raise UserError("nothing to do: give --neighbours WORD, --analogy A B C, --evaluate, "
                        "--export FILE or --plot WORDS")
    emb = (Embeddings.from_word2vec(args.import_file) if args.import_file
           else load_embeddings(args.run, args.checkpoint))
    out: dict = {"words": len(emb.words), "dim": int(emb.vectors.shape[1])}
    lines: list[str] = []
    if args.neighbours:
        ranked = emb.neighbours(args.neighbours, args.top)
        out["neighbours"] = [{"word": w, "similarity": s} for w, s in ranked]
        lines += [f"{w}\t{s:.4f}" for w, s in ranked]
    if args.analogy:
        ranked = emb.analogy(*args.analogy, n=args.top)
        out["analogy"] = [{"word": w, "similarity": s} for w, s in ranked]
        lines += [f"{w}\t{s:.4f}" for w, s in ranked]
    if args.evaluate:
        scores = emb.evaluate()
        out.update(scores)
        ws, sl = (pair_score_text(scores[k], scores[f"{k}_pairs"])
                  for k in ("wordsim353", "simlex999"))
        lines += [f"WordSim-353 Spearman {ws}", f"SimLex-999 Spearman  {sl}",
                  f"analogy accuracy     {scores['analogy_accuracy']:.3f} "
                  f"({scores['analogy_questions']:,} questions, {scores['analogy_skipped']:,} "
                  "skipped)"]
    if args.export:
        out["export"] = str(emb.save_word2vec(args.export))
        print(f"rnnkit: wrote {len(emb.words):,} vectors to {args.export}", file=sys.stderr)
    if args.plot:
        where = args.plot_file or (Path(args.run) / "words.png" if args.run else
                                   Path(args.import_file).with_name("words.png"))
        words = [w.strip() for w in args.plot.split(",") if w.strip()]
        out["plot"] = str(emb.plot(words, where))
        print(f"rnnkit: wrote {where}", file=sys.stderr)
    if args.json:
        from ..train.checkpoint import to_json

        print(to_json(out))
    elif lines:
        print("\n".join(lines))
    return 0

