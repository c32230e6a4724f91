"""`rnnkit predict RUN_DIR`: label texts with a trained sequence classifier, or tag them with a
trained sequence tagger.

A Unix filter: the texts come from ``--csv PATH`` (the ``--text-column`` of each row) or, without
it, from the lines of standard input; stdout gets exactly one line per input row, in order, and
nothing else. A classifier prints ``label<TAB>probability``; a row that cannot be classified (an
empty text) gives an empty output line, its error on stderr, and exit status 2 at the end. A
tagger prints the tag of each token separated by spaces (each character of a line for a
``python-tokens`` run, each word for a CoNLL run; an empty text has no tokens: an empty line).
A music-genre run (piano rolls) reads each line as the path of a score file (MIDI, MusicXML, any
format music21 reads). ``--output FILE`` writes a CSV instead: the input's columns,
``prediction`` (the label, or the tags separated by spaces), and for a classifier one
``probability_CLASS`` column per class.
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
  echo "def f(x): return x + 1" | rnnkit predict runs/tokens     a tagger: a tag a character
  ls tunes/*.mid | rnnkit predict runs/genre       a music-genre run: each line a score file
"""
CHUNK = 256  # rows classified together


def add_parser(sub) -> None:
    from .sample import add_run_arguments

    p = sub.add_parser(
        "predict", help="label texts with a trained classifier, or tag them with a tagger",
        description="Label texts with a trained sequence classifier (an `rnnkit train "
        "classifier` --out directory), or tag them with a trained tagger (`rnnkit train "
        "tagger`): the rows of --csv, or the lines of standard input. One output line per input "
        "row: the label, a tab, its probability; or the tag of each token, separated by "
        "spaces.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--csv", metavar="PATH", help="a CSV or TSV file with a header row "
                   "(default: each line of standard input is a text)")
    p.add_argument("--text-column", metavar="C",
                   help="the column of --csv holding the texts (default: the one the run was "
                   "trained on)")
    p.add_argument("--encoding", default="utf-8", metavar="E", help="of --csv (utf-8)")
    p.add_argument("--output", metavar="FILE", help="write a CSV of the input columns, "
                   "prediction and each class's probability (a tagger: the tags) instead of "
                   "printing")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserError
    from ..train.checkpoint import read_task

    if args.output and os.path.isdir(os.path.expanduser(args.output)):
        raise UserError(f"--output {args.output} is a directory; give the CSV file to write, "
                        f"e.g. {os.path.join(args.output, 'predictions.csv')}")
    if read_task(args.run_dir) == "tagger":
        return _run_tagger(args)
    from ..classification import load_predictor

    predictor = load_predictor(args.run_dir, args.checkpoint)
    texts, where, columns, rows, chunk = _inputs(args, predictor.config)
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
        print(f"rnnkit: wrote {len(results):,} row{'' if len(results) == 1 else 's'} to "
              f"{args.output}", file=sys.stderr)
    return status


def _inputs(args, config: dict):
    """The texts (an iterator), where each comes from (for messages), the input's columns and
    rows (None for stdin) and how many texts to handle together."""
    from ..data.labelled import read_table
    from ..errors import UserError

    if args.csv is not None:
        table = read_table(args.csv, "--csv", args.encoding)
        name = args.text_column or config.get("text_column") or "text"
        column = table.column(name, "--text-column")
        texts = [row[column] if column < len(row) else "" for row in table.rows]
        where = (f"{table.path}: line {line}" for line in table.lines)
        return texts, where, table.columns, table.rows, CHUNK
    if args.text_column:
        raise UserError("--text-column goes with --csv; standard input is one text a line")
    texts = (line.rstrip("\r\n") for line in sys.stdin)
    where = (f"line {i}" for i in itertools.count(1))
    chunk = 1 if sys.stdin.isatty() else CHUNK  # a person typing sees each answer at once
    return texts, where, ["text"], None, chunk


def _run_tagger(args) -> int:
    """A tagger's predictions: the tags of each text's tokens, separated by spaces."""
    from ..tagging import load_tagger

    tagger = load_tagger(args.run_dir, args.checkpoint)
    texts, _, columns, rows, chunk = _inputs(args, tagger.config)
    seen, results = [], []
    texts = iter(texts)
    while batch := list(itertools.islice(texts, chunk)):
        tags = [" ".join(t) for t in tagger.tag(batch)]
        seen += batch
        results += tags
        if not args.output:
            try:
                print("\n".join(tags), flush=True)
            except BrokenPipeError:  # the reader has what it wanted (| head): stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
    if args.output:
        _write_tags_csv(args.output, columns, rows or [[t] for t in seen], results)
        print(f"rnnkit: wrote {len(results):,} row{'' if len(results) == 1 else 's'} to "
              f"{args.output}", file=sys.stderr)
    return 0


def _print(probs: list, classes: list[str]) -> None:
    """``label<TAB>probability`` per row, an empty line where a row has none."""
    for p in probs:
        best = None if p is None else int(p.argmax())
        print("" if p is None else f"{classes[best]}\t{float(p[best]):.4f}")
    sys.stdout.flush()


def _classify(predictor, batch: list[tuple[str, str]]) -> tuple[list, bool]:
    """The probabilities of each (text, where) of ``batch`` (None for a text that cannot be
    classified, its error on stderr) and whether any failed. A run on piano rolls (no
    tokenizer) reads each text as the path of a score file."""
    from ..errors import UserError

    good, inputs = [], []
    for i, (text, where) in enumerate(batch):
        try:
            if predictor.tokenizer is None:
                inputs.append(predictor.features(text.strip(), i + 1))
            else:
                predictor.encode(text)
                inputs.append(text)
            good.append(i)
        except UserError as e:
            why = (str(e) if predictor.tokenizer is None else "no text to classify (the text "
                   "is empty or missing); give each row a text or drop it")
            print(f"rnnkit: error: {where}: {why}", file=sys.stderr, flush=True)
    probs = predictor.probabilities(inputs) if good else []
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


def _write_tags_csv(path: str, columns: list[str], rows: list[list[str]], tags: list[str]
                    ) -> None:
    """The input's columns and ``prediction`` (the tags, separated by spaces), atomically."""
    from ..train.checkpoint import atomic_write_bytes

    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([*columns, "prediction"])
    for row, t in zip(rows, tags):
        writer.writerow([*row, *([""] * (len(columns) - len(row))), t])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
