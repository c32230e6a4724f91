"""`rnnkit predict RUN_DIR`: label texts with a trained sequence classifier.

A Unix filter: the texts come from ``--csv PATH`` (the ``--text-column`` of each row) or, without
it, from the lines of standard input; stdout gets exactly one line per input row, in order,
``label<TAB>probability`` and nothing else. A row that cannot be classified (an empty text)
gives an empty output line, its error on stderr, and exit status 2 at the end. ``--output FILE``
writes a CSV instead: the input's columns, ``prediction``, and one ``probability_CLASS`` column
per class.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import os
import sys

EXAMPLE = """examples:
  rnnkit predict runs/sentiment --csv tweets.csv --text-column text > labels.tsv
  echo "I love my new car" | rnnkit predict runs/sentiment
  rnnkit predict runs/sentiment --csv tweets.csv --output labelled.csv
"""
CHUNK = 256  # rows classified together


def add_parser(sub) -> None:
    from .sample import add_run_arguments

    p = sub.add_parser(
        "predict", help="label texts with a trained classifier (rnnkit train classifier)",
        description="Label texts with a trained sequence classifier (an `rnnkit train "
        "classifier` --out directory): the rows of --csv, or the lines of standard input. One "
        "output line per input row: the label, a tab, its probability.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--csv", metavar="PATH", help="a CSV or TSV file with a header row "
                   "(default: each line of standard input is a text)")
    p.add_argument("--text-column", metavar="C",
                   help="the column of --csv holding the texts (default: the one the run was "
                   "trained on)")
    p.add_argument("--encoding", default="utf-8", metavar="E", help="of --csv (utf-8)")
    p.add_argument("--output", metavar="FILE", help="write a CSV of the input columns, "
                   "prediction and each class's probability instead of printing")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..classification import load_predictor
    from ..data.labelled import read_table
    from ..errors import UserError

    predictor = load_predictor(args.run_dir, args.checkpoint)
    if args.csv is not None:
        table = read_table(args.csv, "--csv", args.encoding)
        name = args.text_column or predictor.config.get("text_column") or "text"
        column = table.column(name, "--text-column")
        texts = [row[column] if column < len(row) else "" for row in table.rows]
        where = (f"{table.path}: line {line}" for line in table.lines)
        columns, rows, chunk = table.columns, table.rows, CHUNK
    else:
        if args.text_column:
            raise UserError("--text-column goes with --csv; standard input is one text a line")
        texts = (line.rstrip("\r\n") for line in sys.stdin)
        where = (f"line {i}" for i in itertools.count(1))
        columns, rows = ["text"], None
        chunk = 1 if sys.stdin.isatty() else CHUNK  # a person typing sees each answer at once
    seen, results, status = [], [], 0
    lines = zip(texts, where)
    while batch := list(itertools.islice(lines, chunk)):
        seen += [text for text, _ in batch]
        probs, failed = _classify(predictor, batch)
        status = 2 if failed else status
        results += probs
        if not args.output:
            try:
                _print(probs, predictor.classes)
            except BrokenPipeError:  # the reader has what it wanted (| head): stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return status
    if args.output:
        _write_csv(args.output, columns, rows or [[t] for t in seen], results, predictor.classes)
        print(f"rnnkit: wrote {len(results):,} rows to {args.output}", file=sys.stderr)
    return status


def _print(probs: list, classes: list[str]) -> None:
    """``label<TAB>probability`` per row, an empty line where a row has none."""
    for p in probs:
        best = None if p is None else int(p.argmax())
        print("" if p is None else f"{classes[best]}\t{float(p[best]):.4f}")
    sys.stdout.flush()


def _classify(predictor, batch: list[tuple[str, str]]) -> tuple[list, bool]:
    """The probabilities of each (text, where) of ``batch`` (None for a text that cannot be
    classified, its error on stderr) and whether any failed."""
    from ..errors import UserError

    good = []
    for i, (text, where) in enumerate(batch):
        try:
            predictor.encode(text)
            good.append(i)
        except UserError:
            print(f"rnnkit: error: {where}: no text to classify (the text is empty or "
                  "missing); give each row a text or drop it", file=sys.stderr, flush=True)
    probs = predictor.probabilities([batch[i][0] for i in good]) if good else []
    by_row = dict(zip(good, probs))
    return [by_row.get(i) for i in range(len(batch))], len(good) < len(batch)


def _write_csv(path: str, columns: list[str], rows: list[list[str]], results, classes) -> None:
    """The input's columns, ``prediction`` and ``probability_CLASS`` per class, atomically."""
    from ..train.checkpoint import atomic_write_bytes

    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([*columns, "prediction", *(f"probability_{c}" for c in classes)])
    for row, p in zip(rows, results):
        row = row + [""] * (len(columns) - len(row))
        if p is None:
            writer.writerow([*row, "", *([""] * len(classes))])
        else:
            writer.writerow([*row, classes[int(p.argmax())], *(f"{v:.6f}" for v in p.tolist())])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
