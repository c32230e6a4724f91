"""`rnnkit sample RUN_DIR`: stream text from a trained language model to stdout; from a
generator run (``rnnkit train generator``), ``--label L`` texts written for a label, one a
line."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """examples:
  rnnkit sample runs/lm --prime "def " --length 300 --temperature 0.8
  rnnkit sample runs/lm --top-p 0.9 --seed 1      reproducible nucleus sampling
  rnnkit sample runs/tweets --label positive --count 5 --temperature 0.8   a generator run
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
    g = p.add_argument_group("a generator run (rnnkit train generator)")
    g.add_argument("--label", help="the label to write for (required for such a run): each "
                   "text starts from its state and ends where the model ends it, or after "
                   "--length tokens")
    g.add_argument("--count", type=int, default=None, help="texts to write, one a line "
                   "(default 1)")
    g.add_argument("--out", metavar="PATH", help="write the sample as a file, for runs whose "
                   "sequences are not text and whose vocabulary can write one")
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """RUN_DIR and --checkpoint: how every command that uses a trained model names it."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory training wrote")
    p.add_argument("--checkpoint", choices=("best", "last", "init"), default="best",
                   help="which checkpoint of the run (default best, else last)")


def run(args) -> int:
    from ..api import load_language_model
    from ..errors import UserError
    from ..models.generate import check_sampling
    from ..train.checkpoint import read_task

    check_sampling(args.length, args.temperature, args.top_k, args.top_p)  # before loading
    task = read_task(args.run_dir)
    if task == "generator":
        return run_generator(args)
    model = load_language_model(args.run_dir, args.checkpoint, "rnnkit sample")
    given = [f for f, v in (("--label", args.label), ("--count", args.count), ("--out", args.out))
             if v is not None]
    if given:
        raise UserError(f"{' and '.join(given)} go{'es' if len(given) == 1 else ''} with a run "
                        f"of rnnkit train generator; {args.run_dir} is a language model's run: "
                        f"sample it without {' and '.join(given)}")
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


def run_generator(args) -> int:
    """``--label``'s texts from a generator run: ``--count`` lines (or ``--out``'s file)."""
    from ..errors import UserError
    from ..generation import load_generator

    gen = load_generator(args.run_dir, args.checkpoint)
    if args.label is None:
        raise UserError(f"{args.run_dir} writes texts for a label: give --label, one of "
                        f"{', '.join(gen.labels)}")
    count = 1 if args.count is None else args.count
    if count < 1:
        raise UserError(f"--count must be a whole number of texts >= 1, got {count}")
    gen.label_id(args.label)  # an unknown label: one line listing the labels
    if args.out is not None:
        return _write_file(gen, args, count)
    g = _draw(args.seed)
    head = args.prime if args.include_prime else ""
    for _ in range(count):
        ids = gen.generate_ids(args.label, gen.tokenizer.encode(args.prime), args.length,
                               args.temperature, args.top_k, args.top_p, g)
        sys.stdout.write(head + gen.tokenizer.decode(ids) + "\n")
        sys.stdout.flush()
    return 0


def _draw(seed: int | None):
    import torch

    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def _write_file(gen, args, count: int) -> int:
    """The plug-in point for a vocabulary that is not text: its ``write(ids, path)`` writes
    the sample (one sample; see ``rnnkit.generation``)."""
    from ..errors import UserError

    write = getattr(gen.tokenizer, "write", None)
    if write is None:
        raise UserError(f"{args.run_dir} writes text, which --out does not take: drop --out "
                        "and redirect the output (> FILE)")
    if count != 1:
        raise UserError("--out writes one sample: drop --count")
    ids = gen.generate_ids(args.label, gen.tokenizer.encode(args.prime), args.length,
                           args.temperature, args.top_k, args.top_p, _draw(args.seed))
    write(ids, args.out)
    print(args.out)
    return 0
