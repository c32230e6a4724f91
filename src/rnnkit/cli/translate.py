"""`rnnkit translate RUN_DIR ["text"]`: decode with a trained encoder-decoder.

With a text: its output (and, with ``--show-attention``, the alignment as a text heatmap).
Without: a Unix filter over standard input, exactly one output line per input line, in order,
nothing else on stdout; a line that cannot be read (a character the model never saw) gives an
empty output line, its error on stderr, and exit status 2 at the end.
"""

from __future__ import annotations

import argparse
import os
import sys

EXAMPLE = """examples:
  rnnkit translate runs/add3 "16+535"
  rnnkit translate runs/dates "22 novembre 2026" --beam 5 --show-attention
  rnnkit translate runs/dates < dates.txt > iso.txt        one output line per input line
"""


def add_parser(sub) -> None:
    from .sample import add_run_arguments

    p = sub.add_parser(
        "translate", help="decode with a trained encoder-decoder (rnnkit train seq2seq)",
        description="Decode text with a trained encoder-decoder (an `rnnkit train seq2seq` "
        "--out directory): the TEXT given, or standard input line by line.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("text", nargs="?", metavar="TEXT",
                   help="the input to decode (default: each line of standard input)")
    p.add_argument("--beam", type=int, default=1,
                   help="beam search over N hypotheses (default 1: greedy)")
    p.add_argument("--length-penalty", type=float, default=0.6, metavar="A",
                   help="GNMT's length penalty exponent for the beam's scores (default 0.6)")
    p.add_argument("--show-attention", "--attention", action="store_true",
                   dest="show_attention", help="print the alignment as a text heatmap (on "
                   "stderr when reading standard input, so stdout stays one line per input)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per input: input, output, score, attention")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # the reader has what it wanted (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args) -> int:
    from ..errors import UserError
    from ..translation import load_translator

    if args.beam < 1:
        raise UserError(f"--beam must be at least 1, got {args.beam}")
    translator = load_translator(args.run_dir, args.checkpoint)
    if args.text is not None:
        _show(translator.translate(args.text, args.beam, args.length_penalty), args, sys.stdout)
        return 0
    status = 0
    for number, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\r\n")
        try:
            result = (translator.translate(line, args.beam, args.length_penalty) if line.strip()
                      else None)
        except UserError as e:
            print(f"rnnkit: error: line {number}: {e}", file=sys.stderr, flush=True)
            result, status = None, 2
        if result is None:
            print("{}" if args.json else "", flush=True)
            continue
        _show(result, args, sys.stdout, heatmap_to=sys.stderr)
    return status


def _show(result, args, out, heatmap_to=None) -> None:
    from ..train.checkpoint import to_json

    if args.json:
        print(to_json({"input": result.source, "output": result.text, "score": result.score,
            "source_tokens": result.source_tokens, "output_tokens": result.output_tokens,
            "attention": [[round(w, 4) for w in row] for row in result.attention.tolist()]}),
            file=out, flush=True)
    else:
        print(result.text, file=out, flush=True)
    if args.show_attention:
        print(result.heatmap(), file=heatmap_to or out, flush=True)
