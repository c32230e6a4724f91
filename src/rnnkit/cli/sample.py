"""`rnnkit sample RUN_DIR`: stream text from a trained language model to stdout."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """examples:
  rnnkit sample runs/lm --prime "def " --length 300 --temperature 0.8
  rnnkit sample runs/lm --top-p 0.9 --seed 1      reproducible nucleus sampling
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample", help="generate text from a trained language model",
        description="Generate text from a trained language model (a `rnnkit train` --out "
        "directory). The prime is printed, then the continuation as it is generated (the same "
        "text as rnnkit.load(RUN_DIR).generate(prime, ...) returns).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--prime", default="", help="text to continue (default: none, the text "
                   "starts as after a newline)")
    p.add_argument("--include-prime", action=argparse.BooleanOptionalAction, default=True,
                   help="print the prime before its continuation (default: on)")
    p.add_argument("--length", type=int, default=500,
                   help="tokens to generate after the prime (default 500)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="> 1 more random, < 1 more conservative, 0 greedy (default 1)")
    p.add_argument("--top-k", type=int, default=0,
                   help="sample from the k most probable tokens only (default 0: all)")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="nucleus sampling: the smallest set of tokens reaching probability p "
                   "(default 1: all)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """RUN_DIR and --checkpoint: how every command that uses a trained model names it."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory training wrote")
    p.add_argument("--checkpoint", choices=("best", "last", "init"), default="best",
                   help="which checkpoint of the run (default best, else last)")


def run(args) -> int:
    from ..api import load_language_model
    from ..models.generate import check_sampling

    check_sampling(args.length, args.temperature, args.top_k, args.top_p)  # before loading
    model = load_language_model(args.run_dir, args.checkpoint, "rnnkit sample")
    pieces = model.generate(args.prime, args.length, args.temperature, args.top_k, args.top_p,
                            args.seed, stream=True, include_prime=args.include_prime)
    out = sys.stdout
    last = ""
    for piece in pieces:
        out.write(piece)
        out.flush()
        last = piece[-1:] or last
    if last != "\n":
        out.write("\n")
    out.flush()
    return 0
