"""`rnnkit bench memory`: which cell learns which span, on the adding problem and the copy task.

Decks 000-004: gradients through a vanilla RNN vanish (or explode) over long spans, so it
stops learning long dependencies where the LSTM's and GRU's gated memory still does. For each
task, each length T and each cell (and, for rnn_tanh and lstm, with and without gradient
clipping) one ``rnnkit train synthetic`` run on the same fixed time budget, then one table:
rows are cells, columns task x T, each entry the test score and whether it counts as solved
(adding: MSE below 1% of always answering 1.0, i.e. 0.0017; copy: 99% of the copied symbols
right), and the longest T each cell solved. The default table (2 tasks x 3 lengths x 6 rows =
36 runs of 90 s, plus evaluation) takes about an hour on 2 cores; an LSTM solves the adding
problem at T = 50 in about 70 s of its 90 (one thread, measured).

Every run uses one thread unless --threads says otherwise: on a shared 2-core machine two
threads can be 25 times slower for these sizes (measured: an LSTM step at T = 500 took 0.4 s
on one thread and 8 s on two while other work ran).

Example:
    rnnkit bench memory --quick                               # a smoke run, seconds
    rnnkit bench memory --json memory.json                    # the table, about an hour
    rnnkit bench memory --cells lstm gru --lengths 100 --tasks adding --max-time 60
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from .timing import machine, write_json

TASKS = ("adding", "copy")
CELLS = ("rnn_tanh", "lstm", "gru", "mingru")
CLIP_CONTRAST = ("rnn_tanh", "lstm")  # these also run without clipping
LENGTHS = (50, 200, 500)
MAX_TIME = 90.0  # seconds of training a run: 36 runs plus evaluation, about an hour
QUICK = {"max_time": 0.5, "lengths": (10,), "val_size": 100, "test_size": 100}


def rows_for(cells: list[str], clip: float) -> list[tuple[str, float]]:
    """The table's rows: (cell, clip) for every cell, then without clipping for the cells of
    ``CLIP_CONTRAST``.

    Example:
        >>> rows_for(["rnn_tanh", "gru"], 1.0)
        [('rnn_tanh', 1.0), ('rnn_tanh', 0.0), ('gru', 1.0)]
    """
    rows = []
    for cell in cells:
        rows.append((cell, clip))
        if cell in CLIP_CONTRAST and clip:
            rows.append((cell, 0.0))
    return rows


def row_name(cell: str, clip: float) -> str:
    return cell if clip else f"{cell} (no clip)"


def bench_run(task: str, length: int, cell: str, clip: float, max_time: float, workdir: Path,
              extra: dict[str, Any]) -> dict[str, Any]:
    """One ``rnnkit train synthetic`` run on the budget; its entry of the table."""
    from ..train.synthetic import run_synthetic

    out = workdir / f"{task}-{length}-{cell}-clip{clip:g}"
    t0 = time.perf_counter()
    s = run_synthetic({"dataset": task, "length": length, "cell": cell, "clip": clip,
                       "max_time": max_time, "progress": False, "out": str(out), **extra})
    if s["status"] == "interrupted":  # Ctrl-C stops the benchmark, not just this run
        raise KeyboardInterrupt
    score = "test_mse_ratio" if task == "adding" else "test_accuracy"
    return {"task": task, "length": length, "cell": cell, "clip": clip,
            "row": row_name(cell, clip), "status": s["status"], "steps": s["steps"],
            "score": s.get(score), "score_name": score[5:], "solved": bool(s.get("solved")),
            "test_loss": s.get("test_loss"), "parameters": s["parameters"],
            "wall_seconds": time.perf_counter() - t0}


def longest_solved(runs: list[dict[str, Any]]) -> dict[str, dict[str, int | None]]:
    """For each row and task: the longest T solved (None: none)."""
    best: dict[str, dict[str, int | None]] = {}
    for r in runs:
        per_task = best.setdefault(r["row"], {})
        per_task.setdefault(r["task"], None)
        if r["solved"] and (per_task[r["task"]] or 0) < r["length"]:
            per_task[r["task"]] = r["length"]
    return best


def _entry(r: dict[str, Any]) -> str:
    if r["status"] == "nonfinite":
        return "diverged"
    if r["score"] is None:
        return "-"
    return f"{r['score']:.1%} {'yes' if r['solved'] else 'no'}"


def table(runs: list[dict[str, Any]], tasks: list[str], lengths: list[int], max_time: float,
          quick: bool) -> str:
    columns = [(t, n) for t in tasks for n in lengths]
    rows = list(dict.fromkeys(r["row"] for r in runs))
    at = {(r["row"], r["task"], r["length"]): r for r in runs}
    longest = longest_solved(runs)
    head = [f"{t} T={n}" for t, n in columns]
    width = max(14, *(len(h) for h in head))
    lines = [f"{'cell':<18}" + "".join(f"{h:>{width}}" for h in head)
             + "   longest T solved (" + " / ".join(tasks) + ")"]
    for row in rows:
        entries = [_entry(at[row, t, n]) if (row, t, n) in at else "-" for t, n in columns]
        solved = " / ".join(str(longest[row].get(t) or "none") for t in tasks)
        lines.append(f"{row:<18}" + "".join(f"{e:>{width}}" for e in entries) + f"   {solved}")
    lines.append("adding: test MSE as a share of always answering 1.0's (0.167), solved below "
                 "1%; copy: the copied symbols right, solved from 99%")
    if quick:
        lines.append(f"(--quick: {max_time:g} s per run, a smoke run: too short to judge which "
                     f"cell learns which span; run without --quick, {MAX_TIME:g} s per run)")
    else:
        lines.append(f"({max_time:g} s of training per run, the same for every cell)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit bench memory", description=__doc__.split("\n\n")[0],
        epilog="example:\n  rnnkit bench memory --quick\n  rnnkit bench memory --cells lstm "
        "rnn_tanh --lengths 50 100 --max-time 60 --json m.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-time", type=float, default=MAX_TIME, metavar="S",
                   help=f"training seconds per run (default {MAX_TIME:g})")
    p.add_argument("--cells", nargs="+", default=list(CELLS), metavar="CELL",
                   help=f"cells, any of rnnkit cells (default {' '.join(CELLS)}); "
                   f"{' and '.join(CLIP_CONTRAST)} also run without clipping")
    p.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS), metavar="T",
                   help=f"spans T (default {' '.join(map(str, LENGTHS))})")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS,
                   help="adding, copy (default both)")
    p.add_argument("--clip", type=float, default=1.0, metavar="X",
                   help="gradient clipping of the clipped rows (default 1.0)")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads per run (default 1)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['max_time']:g} s per run at T = "
                   f"{', '.join(map(str, QUICK['lengths']))}: a smoke run")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    return p


def _check(args: argparse.Namespace) -> None:
    from ..cells import available

    if not (args.max_time > 0 and math.isfinite(args.max_time)):
        raise UserError(f"--max-time must be a positive number of seconds, got {args.max_time}")
    unknown = [c for c in args.cells if c not in available()]
    if unknown:
        raise UserError(f"unknown cell {unknown[0]!r}; choose --cells from "
                        f"{', '.join(available())}")
    if any(n < 2 for n in args.lengths):
        raise UserError(f"--lengths must be whole numbers of at least 2, got {args.lengths}")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.max_time = QUICK["max_time"]
        args.lengths = list(QUICK["lengths"])
    _check(args)
    rows = rows_for(args.cells, args.clip)
    plan = [(t, n, cell, clip) for t in args.tasks for n in args.lengths for cell, clip in rows]
    extra: dict[str, Any] = {"seed": args.seed, "threads": args.threads}
    if args.quick:
        extra.update(val_size=QUICK["val_size"], test_size=QUICK["test_size"])
    print(f"[bench memory] {len(plan)} runs of {args.max_time:g} s of training "
          f"(about {len(plan) * (args.max_time + 5) / 60:.0f} min with evaluation)",
          file=sys.stderr, flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-memory-") as work:
        for i, (task, length, cell, clip) in enumerate(plan, 1):
            print(f"[bench memory] {i}/{len(plan)}: {task} T={length} {row_name(cell, clip)}",
                  file=sys.stderr, flush=True)
            runs.append(bench_run(task, length, cell, clip, args.max_time, Path(work), extra))
    print(table(runs, args.tasks, args.lengths, args.max_time, args.quick))
    if args.json:
        write_json(args.json, {"benchmark": "memory", "quick": args.quick, "machine": machine(),
                               "max_time": args.max_time, "tasks": args.tasks,
                               "lengths": args.lengths, "clip": args.clip, "seed": args.seed,
                               "runs": runs, "longest_solved": longest_solved(runs)})
    return 0
