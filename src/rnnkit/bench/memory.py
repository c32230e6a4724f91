"""`rnnkit bench memory`: which cell learns which span, on the adding problem and the copy task.

Decks 000-004: gradients through a vanilla RNN vanish (or explode) over long spans, so it
stops learning long dependencies where the LSTM's and GRU's gated memory still does. For each
task, each length T and each cell (and, for rnn_tanh and lstm, with and without gradient
clipping) one ``rnnkit train synthetic`` run with the task's defaults (gated cells start with
chrono gates, Tallec & Ollivier 2018), then one table: rows are cells, columns task x T, each
entry the test score and whether it counts as solved (adding: MSE below 1% of always answering
1.0, i.e. 0.0017; copy: 99% of the copied symbols right), and the longest T each cell solved.

The budget is in steps, the same for every cell at one T (``train.synthetic.default_steps``:
the adding problem's grows with T, 1,500 steps at T = 50 to 3,000 at T = 500; the copy
task's, 4,000 at T = 50, shrinks to 1,300 at T = 500 to fit the hour), so a table does not
change with the machine's load, and a cell that fails had as many updates as the one that
succeeded; each entry records its seconds too. A step costs about T, so the seconds grow
with T for both tasks. The default table (2 tasks x 3 lengths x 6 rows = 36 runs, two at a time
with ``--jobs 2``) takes about an hour on 2 cores. ``--max-time S`` gives every run S seconds
instead (and ``--steps N`` N steps).

Every run uses one thread unless --threads says otherwise: on a shared 2-core machine two
threads can be 25 times slower for these sizes (measured: an LSTM step at T = 500 took 0.4 s
on one thread and 8 s on two while other work ran).

Example:
    rnnkit bench memory --quick                               # a smoke run, seconds
    rnnkit bench memory --json memory.json                    # the table, about an hour
    rnnkit bench memory --cells lstm gru --lengths 100 --tasks adding --steps 2000
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from ..errors import UserError
from .timing import machine, write_json

TASKS = ("adding", "copy")
CELLS = ("rnn_tanh", "lstm", "gru", "mingru")
CLIP_CONTRAST = ("rnn_tanh", "lstm")  # these also run without clipping
LENGTHS = (50, 200, 500)
JOBS = 2  # runs side by side, one thread each: a 2-core machine
QUICK = {"max_time": 0.5, "lengths": (10,), "val_size": 100, "test_size": 100}


def budget(task: str, length: int, steps: int | None = None,
           max_time: float | None = None) -> dict[str, Any]:
    """One run's budget: ``steps`` or ``max_time`` when given (the same for every run), else
    the task's default steps at this length (``default_steps``), the same for every cell.

    Example:
        >>> budget("adding", 200), budget("copy", 50, max_time=60.0)
        ({'steps': 2300}, {'max_time': 60.0})
    """
    from ..train.synthetic import default_steps

    if max_time is not None:
        return {"max_time": max_time}
    return {"steps": steps if steps is not None else default_steps(task, length)}


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


def bench_run(task: str, length: int, cell: str, clip: float, run_budget: dict[str, Any],
              workdir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """One ``rnnkit train synthetic`` run on its budget; its entry of the table."""
    from ..train.synthetic import run_synthetic

    out = workdir / f"{task}-{length}-{cell}-clip{clip:g}"
    t0 = time.perf_counter()
    s = run_synthetic({"dataset": task, "length": length, "cell": cell, "clip": clip,
                       "progress": False, "out": str(out), **run_budget, **extra})
    if s["status"] == "interrupted":  # Ctrl-C stops the benchmark, not just this run
        raise KeyboardInterrupt
    score = "test_mse_ratio" if task == "adding" else "test_accuracy"
    return {"task": task, "length": length, "cell": cell, "clip": clip,
            "row": row_name(cell, clip), "status": s["status"], "steps": s["steps"],
            "budget": run_budget, "score": s.get(score), "score_name": score[5:],
            "solved": bool(s.get("solved")), "test_loss": s.get("test_loss"),
            "parameters": s["parameters"], "wall_seconds": time.perf_counter() - t0,
            "train_seconds": s.get("train_seconds", time.perf_counter() - t0)}


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
    share = f"{r['score']:.2%}" if r["score"] < 0.1 else f"{r['score']:.1%}"  # 1.02%: no
    return f"{share} {'yes' if r['solved'] else 'no'}"


def budget_line(runs: list[dict[str, Any]], task: str, length: int) -> str:
    """What one column's runs got: their budget, the steps they took and the seconds."""
    col = [r for r in runs if r["task"] == task and r["length"] == length]
    if not col:
        return f"{task} T={length}: not run"
    given = col[0]["budget"]
    what = (f"{given['steps']:,} steps" if "steps" in given
            else f"{given['max_time']:g} s ({min(r['steps'] for r in col):,}-"
            f"{max(r['steps'] for r in col):,} steps)")
    secs = [r["train_seconds"] for r in col]
    return f"{task} T={length}: {what}, {min(secs):.0f}-{max(secs):.0f} s of training"


def table(runs: list[dict[str, Any]], tasks: list[str], lengths: list[int],
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
    lines.append("budgets, the same for every cell at one T: "
                 + "; ".join(budget_line(runs, t, n) for t, n in columns))
    if quick:
        lines.append("(--quick: a smoke run, too short to judge which cell learns which span; "
                     "run without --quick)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit bench memory", description=__doc__.split("\n\n")[0],
        epilog="example:\n  rnnkit bench memory --quick\n  rnnkit bench memory --cells lstm "
        "rnn_tanh --lengths 50 100 --steps 2000 --json m.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, metavar="N",
                   help="training steps per run (default: by task and T, the same for every "
                   "cell; adding 1,500 at T = 50 to 3,000 at T = 500, copy 4,000 at T = 50 "
                   "to 1,300 at T = 500)")
    g.add_argument("--max-time", type=float, metavar="S",
                   help="training seconds per run instead of steps (varies with the load)")
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
    p.add_argument("--jobs", type=int, default=JOBS, metavar="N",
                   help=f"runs side by side, each a process (default {JOBS}: one a core of a "
                   "2-core machine; the results do not depend on it)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['max_time']:g} s per run at T = "
                   f"{', '.join(map(str, QUICK['lengths']))}, one run at a time: a smoke run")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    p.add_argument("--out", metavar="DIR", help="keep every run's directory under DIR (named "
                   "TASK-T-CELL-clipX; for rnnkit analyze gradients); default: a temporary one")
    return p


def _check(args: argparse.Namespace) -> None:
    from ..cells import available

    if args.max_time is not None and not (args.max_time > 0 and math.isfinite(args.max_time)):
        raise UserError(f"--max-time must be a positive number of seconds, got {args.max_time}")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    unknown = [c for c in args.cells if c not in available()]
    if unknown:
        raise UserError(f"unknown cell {unknown[0]!r}; choose --cells from "
                        f"{', '.join(available())}")
    if any(n < 2 for n in args.lengths):
        raise UserError(f"--lengths must be whole numbers of at least 2, got {args.lengths}")
    for flag in ("threads", "jobs"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")


def run_plan(plan: list[tuple[Any, ...]], jobs: int, workdir: Path,
             extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run of the plan, ``jobs`` at a time (each in its own process when more than one),
    the longest first; the results in the plan's order."""
    def say(i: int, what: str) -> None:
        task, length, cell, clip, _ = plan[i]
        print(f"[bench memory] {what} {i + 1}/{len(plan)}: {task} T={length} "
              f"{row_name(cell, clip)}", file=sys.stderr, flush=True)

    if jobs == 1:
        runs = []
        for i, item in enumerate(plan):
            say(i, "run")
            runs.append(bench_run(*item, workdir, extra))
        return runs
    order = sorted(range(len(plan)), key=lambda i: -plan[i][1])  # a step costs about T
    done: dict[int, dict[str, Any]] = {}
    spawn = multiprocessing.get_context("spawn")  # no forked torch threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
        running: dict[Future, int] = {}
        try:
            for i in order:
                running[pool.submit(bench_run, *plan[i], workdir, extra)] = i
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    i = running.pop(f)
                    done[i] = f.result()
                    say(i, f"done ({len(done)} of {len(plan)}, "
                        f"{done[i]['train_seconds']:.0f} s)")
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [done[i] for i in range(len(plan))]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.max_time, args.steps, args.jobs = QUICK["max_time"], None, 1
        args.lengths = list(QUICK["lengths"])
    _check(args)
    rows = rows_for(args.cells, args.clip)
    plan = [(t, n, cell, clip, budget(t, n, args.steps, args.max_time))
            for t in args.tasks for n in args.lengths for cell, clip in rows]
    extra: dict[str, Any] = {"seed": args.seed, "threads": args.threads}
    if args.quick:
        extra.update(val_size=QUICK["val_size"], test_size=QUICK["test_size"])
    print(f"[bench memory] {len(plan)} runs, {min(args.jobs, len(plan))} at a time",
          file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        runs = run_plan(plan, args.jobs, Path(args.out), extra)
    else:
        with tempfile.TemporaryDirectory(prefix="rnnkit-bench-memory-") as work:
            runs = run_plan(plan, args.jobs, Path(work), extra)
    print(table(runs, args.tasks, args.lengths, args.quick))
    if args.json:
        write_json(args.json, {"benchmark": "memory", "quick": args.quick, "machine": machine(),
                               "steps": args.steps, "max_time": args.max_time,
                               "jobs": args.jobs, "tasks": args.tasks,
                               "lengths": args.lengths, "clip": args.clip, "seed": args.seed,
                               "runs": runs, "longest_solved": longest_solved(runs)})
    return 0
