"""`rnnkit evaluate RUN_DIR --text PATH`: score text with a trained language model."""

from __future__ import annotations

import argparse
import json

from .sample import add_run_arguments

EXAMPLE = """examples:
  rnnkit evaluate runs/lm --text notes.txt
  rnnkit evaluate runs/lm --dataset python-docs --split test --json
"""
SPLITS = ("all", "train", "val", "test")
FIELDS = ("tokens", "chars", "loss", "perplexity", "bpc")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score text with a trained language model (loss, perplexity, bpc)",
        description="Score text with a trained language model: tokens, chars, loss (nats per "
        "token), perplexity and bpc (total nats over characters, so every tokenizer compares).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--text", metavar="PATH", help="a UTF-8 file, a directory or a glob")
    p.add_argument("--dataset", metavar="NAME", help="a built-in corpus instead of --text")
    p.add_argument("--split", choices=SPLITS, default="all",
                   help="score only this part of the text, split as training splits it "
                   "(default all); on the run's own corpus, exactly the run's split")
    p.add_argument("--max-chars", type=int, default=None,
                   help="read at most this many characters of the text (default: all, or "
                   "as much as training read when it is the run's own corpus)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import load
    from ..data import load_corpus, split_corpus
    from ..errors import UserError

    if args.text is None and args.dataset is None:
        raise UserError("nothing to score: give --text PATH or --dataset NAME")
    if args.text is not None:
        load_corpus(text=args.text, max_chars=1)  # a bad path fails before a model is loaded
    model = load(args.run_dir, args.checkpoint)
    cfg = model.config
    max_chars = args.max_chars
    if max_chars is None and _is_training_corpus(args, cfg):
        max_chars = cfg.get("max_chars")  # read it as training did: the same splits
    text = load_corpus(args.dataset, args.text, max_chars)
    if args.split != "all":
        parts = split_corpus(text, cfg.get("val_fraction", 0.05), cfg.get("test_fraction", 0.05))
        text = parts[SPLITS.index(args.split) - 1]
    result = model.score(text)
    if args.json:
        print(json.dumps(result))
    else:
        for name in FIELDS:
            value = result[name]
            print(f"{name:<11} {value:.4f}" if isinstance(value, float) else f"{name:<11} {value}")
    return 0


def _is_training_corpus(args, cfg: dict) -> bool:
    """Whether --text/--dataset names the corpus the run was trained on."""
    from ..data import DEFAULT_DATASET

    if args.text is not None:
        return cfg.get("text") is not None and str(args.text) == str(cfg["text"])
    return cfg.get("text") is None and args.dataset == (cfg.get("dataset") or DEFAULT_DATASET)
