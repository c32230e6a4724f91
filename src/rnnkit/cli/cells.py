"""`rnnkit cells`: every recurrent cell rnnkit has, what it is and which backends run it."""

from __future__ import annotations

import argparse
import json

EXAMPLE = """examples:
  rnnkit cells                                   the table
  rnnkit train lm --cell gru                     train a language model with one of them
  rnnkit train --cell list                       the same table
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "cells", help="list the recurrent cells (--cell NAME) and the backends each runs on",
        description="List every recurrent cell: its name (for --cell NAME, or "
        "rnnkit.Recurrent(NAME, ...) in Python), the backends that can run it (--backend; "
        "auto picks the fastest of them) and what it is.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: {name: {description, backends}}")
    p.set_defaults(func=run)


def cell_table() -> list[dict[str, str | list[str]]]:
    """One row per cell of ``rnnkit.cells.available()``: name, backends (``auto`` left out: it
    runs every cell) and the cell's own one-line description."""
    from ..cells import available, cell_class, describe
    from ..engine import supported_backends

    return [{"name": name, "description": describe(name),
             "backends": [b for b in supported_backends(cell_class(name)) if b != "auto"]}
            for name in available()]


def format_table(rows: list[dict[str, str | list[str]]]) -> str:
    lines = [("cell", "backends", "description")]
    lines += [(r["name"], " ".join(r["backends"]), r["description"]) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in lines)


def run(args: argparse.Namespace) -> int:
    rows = cell_table()
    if getattr(args, "json", False):
        print(json.dumps({r["name"]: {"description": r["description"],
                                      "backends": r["backends"]} for r in rows}))
    else:
        print(format_table(rows))
    return 0
