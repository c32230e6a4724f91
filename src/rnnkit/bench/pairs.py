"""`rnnkit bench pairs [FILE.tsv ...]`: the seq2seq defaults on pairs they were never tuned on.

For each TSV, ``rnnkit train seq2seq --tsv FILE --max-time S`` exactly as a new user runs it
(every other setting at its default), then one table row: the pairs, the steps and passes the
budget gave, and the exact-match share of the held-out pairs. The goal: >= 95 % exact on the
test pairs of a few thousand short pairs in 240 s on 2 cores.

Without files it writes four kinds of its own (none is a built-in ``--dataset``) and runs them:

* ``roman``: Roman numerals to digits ("MCMXCIV" -> "1994"), 3,000 numbers below 4,000;
* ``snake``: camelCase identifiers to snake_case ("parseHttpHeader" -> "parse_http_header"),
  made from the words of the Python standard library's source;
* ``sorted``: a word to its letters in alphabetical order ("banana" -> "aaabnn");
* ``clock``: a 12-hour time in words or digits to 24-hour digits ("quarter past 7 pm" ->
  "19:15").

Example:
    rnnkit bench pairs --quick                       # a smoke run, seconds
    rnnkit bench pairs my_pairs.tsv --max-time 240 --json pairs.json
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError
from .timing import machine, write_json

GOAL = 0.95
QUICK = {"max_time": 3.0}
PAIRS = 3000


def roman(rng: random.Random) -> list[tuple[str, str]]:
    numbers = rng.sample(range(1, 4000), PAIRS)
    marks = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
             (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]

    def write(n: int) -> str:
        out = ""
        for value, mark in marks:
            while n >= value:
                out, n = out + mark, n - value
        return out

    return [(write(n), str(n)) for n in numbers]


def _words(rng: random.Random) -> list[str]:
    """Lower-case words of 3 to 9 letters from the standard library's source."""
    from ..data.corpora import python_source_files

    words: set[str] = set()
    for path in python_source_files()[:400]:
        words.update(w for w in re.findall(r"[a-z]{3,9}", path.read_text(errors="ignore")))
    return sorted(words)


def snake(rng: random.Random) -> list[tuple[str, str]]:
    words = _words(rng)
    out: dict[str, str] = {}
    while len(out) < PAIRS:
        parts = rng.sample(words, rng.randint(2, 3))
        camel = parts[0] + "".join(p.capitalize() for p in parts[1:])
        out.setdefault(camel, "_".join(parts))
    return list(out.items())


def sorted_letters(rng: random.Random) -> list[tuple[str, str]]:
    words = _words(rng)
    return [(w, "".join(sorted(w))) for w in rng.sample(words, min(PAIRS, len(words)))]


def clock(rng: random.Random) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    while len(out) < PAIRS:
        h24, m = divmod(rng.randrange(0, 24 * 60, rng.choice((1, 5, 15))), 60)
        h12, half = h24 % 12 or 12, "am" if h24 < 12 else "pm"
        later = (h24 + 1) % 24
        words = {0: f"{h12} o'clock {half}", 15: f"quarter past {h12} {half}",
                 30: f"half past {h12} {half}",
                 45: f"quarter to {later % 12 or 12} {'am' if later < 12 else 'pm'}"}
        if m in words and rng.random() < 0.5:
            text = words[m]
        else:
            text = rng.choice((f"{h12}:{m:02d} {half}", f"{h12}:{m:02d}{half}",
                               f"{h12}.{m:02d} {half[0]}.m."))
        out.setdefault(text, f"{h24:02d}:{m:02d}")
    return list(out.items())


KINDS: dict[str, Callable[[random.Random], list[tuple[str, str]]]] = {
    "roman": roman, "snake": snake, "sorted": sorted_letters, "clock": clock}


def write_examples(directory: Path, seed: int = 7) -> list[Path]:
    """The four built-in kinds as TSV files in ``directory``."""
    paths = []
    for name, make in KINDS.items():
        pairs = make(random.Random(f"{seed}-{name}"))
        path = directory / f"{name}.tsv"
        path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
        paths.append(path)
    return paths


def bench_file(path: Path, max_time: float, workdir: Path,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with the defaults on ``path`` for ``max_time`` seconds; the table's row."""
    from ..train.seq2seq import run_seq2seq

    t0 = time.perf_counter()
    s = run_seq2seq({"tsv": str(path), "max_time": max_time, "progress": False,
                     "out": str(workdir / path.stem), **(extra or {})})
    return {"file": str(path), "pairs": s["train_examples"] + s["val_examples"]
            + s["test_examples"], "steps": s["steps"], "epochs": s["epochs"],
            "train_seconds": s["train_seconds"], "wall_seconds": time.perf_counter() - t0,
            "val_exact": s.get("val_exact"), "test_exact": s.get("test_exact"),
            "status": s["status"]}


def table(result: dict[str, Any]) -> str:
    lines = [f"seq2seq defaults on TSV pairs, {result['max_time']:g} s each "
             f"(goal: test exact >= {GOAL:.0%})",
             f"{'file':<24} {'pairs':>6} {'steps':>6} {'epochs':>6} {'val':>7} {'test':>7}"]
    for r in result["rows"]:
        lines.append(f"{Path(r['file']).name:<24} {r['pairs']:>6,} {r['steps']:>6} "
                     f"{r['epochs']:>6.1f} {r['val_exact']:>7.1%} {r['test_exact']:>7.1%}")
    if result["quick"]:
        lines.append("a smoke run (--quick): the budget is too small to judge the goal")
    else:
        met = sum(r["test_exact"] >= GOAL for r in result["rows"])
        lines.append(f"goal met on {met} of {len(result['rows'])} files")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnkit bench pairs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE.tsv",
                   help="your pairs (default: the four kinds above, generated)")
    p.add_argument("--max-time", type=float, default=240.0, metavar="S",
                   help="training seconds per file (240)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 3 s per file")
    p.add_argument("--keep", metavar="DIR", help="write the runs (and generated TSVs) here "
                   "instead of a temporary directory")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    max_time = QUICK["max_time"] if args.quick else args.max_time
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = [Path(f) for f in args.files] or write_examples(work)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UserError(f"no such file: {missing[0]}; pass TSV files of source<TAB>target")
        rows = []
        for f in files:
            rows.append(bench_file(f, max_time, work / "runs"))
            print(f"{f.name}: test exact {rows[-1]['test_exact']:.1%}", file=sys.stderr,
                  flush=True)
    result = {"rows": rows, "max_time": max_time, "quick": args.quick, "machine": machine()}
    print(table(result))
    if args.json:
        write_json(args.json, result)
    return 0
