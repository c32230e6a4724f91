"""`rnnkit gradcheck CELL`: a cell's hand-derived backward against autograd, in float64."""

from __future__ import annotations

import argparse
import json

from ..errors import UserError

EXAMPLE = """examples:
  rnnkit gradcheck examples/my_cell.py:MyCell    a cell of yours (FILE:CLASS)
  rnnkit gradcheck gru                           a built-in cell
  rnnkit gradcheck my_cell.py:MyCell --hidden 8 --steps 10 --json

Exit status: 0 when the backward matches autograd, 1 when it differs (the table names each
step and gradient that differs: a parameter, x(t), or the previous state h(t-1), c(t-1)),
2 when the cell cannot be loaded or has no backward step.
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "gradcheck", help="check a cell's backward step against autograd (float64)",
        description="Run the cell's forward_step / backward_step step by step along a random "
        "sequence, and the bptt engine over the whole sequence, and compare every gradient with "
        "autograd's through the cell's step (float64). CELL is a cell name or FILE.py:CLASS.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cell", metavar="CELL", help="a cell name (rnnkit cells) or FILE.py:CLASS")
    p.add_argument("--input", type=int, default=3, metavar="N", help="input size (3)")
    p.add_argument("--hidden", type=int, default=4, metavar="N", help="hidden size (4)")
    p.add_argument("--batch", type=int, default=3, metavar="N", help="batch size (3)")
    p.add_argument("--steps", type=int, default=5, metavar="N", help="sequence length (5)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..cells import available, is_spec
    from ..cells.user import absolute_spec
    from ..engine.gradcheck import check_cell, format_report

    name = absolute_spec(args.cell) if is_spec(args.cell) else args.cell
    if name not in available():  # (a FILE:CLASS is imported here: a UserError if it fails)
        raise UserError(f"unknown cell {args.cell!r}: give FILE.py:CLASS or one of "
                        f"{', '.join(available())}")
    for flag in ("input", "hidden", "batch", "steps"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    try:
        report = check_cell(name, args.input, args.hidden, args.batch, args.steps, args.seed)
    except ValueError as e:  # no backward step
        raise UserError(str(e)) from e
    report.cell = args.cell
    if args.json:
        print(json.dumps({"cell": args.cell, "ok": report.ok, "compared": report.compared,
                          "max_error": report.max_error,
                          "differences": [asdict(d) for d in report.differences]}))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
