"""`rnnkit bench texts FILE...`: the language model's defaults on your texts, against the
counted 5-gram.

For each text, ``rnnkit train lm --text FILE --max-time S`` exactly as a new user runs it
(every other setting at its default: the model is sized from the text), then one table row:
the text's size, what the defaults chose, how many steps and passes over the text the budget
gave, and the validation and test bits per character beside the smoothed character 5-gram's
on the same split. The goal: with defaults and a 150 s budget, validation bpc below the
5-gram's for every text of 100,000 characters or more.

Example:
    rnnkit bench texts --quick notes.txt                      # a smoke run, seconds
    rnnkit bench texts a.txt b.md src/ --max-time 150 --json texts.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from .timing import machine, write_json

GOAL_CHARS = 100_000  # the goal holds for texts at least this long
QUICK = {"max_time": 3.0}


def bench_text(text: str, max_time: float, workdir: Path,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with the defaults on ``text`` for ``max_time`` seconds; the table's row."""
    from ..data import load_corpus
    from ..train.lm import run_lm

    chars = len(load_corpus(text=text))
    out = workdir / f"run-{len(list(workdir.iterdir()))}"
    t0 = time.perf_counter()
    s = run_lm({"text": text, "max_time": max_time, "progress": False, "out": str(out),
                **(extra or {})})
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))  # what was chosen
    return {"text": text, "chars": chars, "train_chars": s["train_chars"],
            "hidden": cfg["hidden"], "dropout": cfg["dropout"],
            "weight_decay": cfg["weight_decay"], "rows": cfg["batch_size"], "steps": s["steps"],
            "epochs": s["epochs"], "val_bpc": s["val_bpc"], "val_ngram_bpc": s["val_ngram_bpc"],
            "test_bpc": s["test_bpc"], "test_ngram_bpc": s["test_ngram_bpc"],
            "wall_seconds": time.perf_counter() - t0, "warnings": s.get("warnings", []),
            "goal": "n/a" if chars < GOAL_CHARS else
            ("met" if s["val_bpc"] < s["val_ngram_bpc"] else "missed")}


def table(rows: list[dict[str, Any]], max_time: float, quick: bool) -> str:
    lines = [f"{'text':<24} {'chars':>10} {'hidden':>6} {'drop':>5} {'wd':>5} {'rows':>4} "
             f"{'steps':>6} {'passes':>6} {'val bpc':>8} {'5-gram':>7} {'test bpc':>8} "
             f"{'5-gram':>7}  goal"]
    for r in rows:
        lines.append(f"{Path(r['text']).name[:24]:<24} {r['chars']:>10,} {r['hidden']:>6} "
                     f"{r['dropout']:>5.2f} {r['weight_decay']:>5.2f} {r['rows']:>4} "
                     f"{r['steps']:>6,} {r['epochs']:>6.1f} "
                     f"{r['val_bpc']:>8.3f} {r['val_ngram_bpc']:>7.3f} {r['test_bpc']:>8.3f} "
                     f"{r['test_ngram_bpc']:>7.3f}  {r['goal']}")
    if quick:
        lines.append(f"(--quick: {max_time:g} s per text, a smoke run: too short to judge the "
                     "goal; run without --quick, 150 s per text)")
    else:
        judged = [r for r in rows if r["goal"] != "n/a"]
        met = sum(r["goal"] == "met" for r in judged)
        lines.append(f"goal (val bpc below the 5-gram's, texts of {GOAL_CHARS:,}+ characters, "
                     f"defaults, {max_time:g} s each): met on {met} of {len(judged)}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit bench texts", description=__doc__.split("\n\n")[0],
        epilog="example:\n  rnnkit bench texts notes.txt src/ --max-time 150 --json t.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("texts", nargs="+", metavar="TEXT", help="files, directories or globs")
    p.add_argument("--max-time", type=float, default=150.0,
                   help="training seconds per text (default 150)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['max_time']:g} s per text: a smoke run")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    max_time = QUICK["max_time"] if args.quick else args.max_time
    if not (max_time > 0 and math.isfinite(max_time)):
        raise UserError(f"--max-time must be a positive number of seconds, got {max_time}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-texts-") as work:
        for text in args.texts:
            print(f"[bench texts] {text}: {max_time:g} s with the defaults", file=sys.stderr,
                  flush=True)
            rows.append(bench_text(text, max_time, Path(work)))
    print(table(rows, max_time, args.quick))
    if args.json:
        write_json(args.json, {"benchmark": "texts", "quick": args.quick, "machine": machine(),
                               "max_time": max_time, "rows": rows})
    return 0
