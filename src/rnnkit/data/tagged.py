"""Tagged sequences for the sequence tagger: a tag for every token (synced many-to-many).

Built in (``--dataset python-tokens``): every character of Python source tagged with the class
of the token it belongs to, as Python's ``tokenize`` module reads it:

* ``keyword``: a NAME token in ``keyword.kwlist`` (``def``, ``if``, ``None`` ...). The soft
  keywords (``match``, ``case``, ``type``, ``_``) are ``name``: they are keywords only in some
  places, ``keyword.kwlist`` leaves them out, and the standard library uses them as names.
* ``name``: every other NAME token.
* ``string``: a STRING token, prefix and quotes included. Python 3.12+ tokenizes an f-string
  into pieces (FSTRING_START, its text, the names and operators inside its braces,
  FSTRING_END; 3.14's t-strings likewise): the whole f-string is ``string`` here, braces and
  all, as one STRING token is before 3.12, so the labels do not move with the Python version.
* ``number``, ``comment``: NUMBER and COMMENT tokens.
* ``operator``: OP tokens (brackets, ``.``, ``,``, ``:``, ``=``, ``+=`` ...).
* ``whitespace``: every character in no token: spaces and tabs, newlines (NEWLINE and NL
  tokens), the indentation (INDENT tokens hold only whitespace) and a line-continuation
  backslash, which ``tokenize`` reads as part of the space between tokens.

The files are the standard library's (``corpora.python_source_files``: no test suites, no
generated tables), UTF-8 only; a file ``tokenize`` cannot read (or reads with an ERRORTOKEN)
is skipped. They are split by whole files, by a hash of their path (``zlib.crc32``: 1 in 10
to test, 1 in 10 to validation), and taken in the order of that hash up to ``max_chars``
training characters (a tenth of that for each held-out split), so the selection never depends
on the machine, only on the Python version's library. A file is cut into sequences of at most
``seq_len`` characters at the ends of lines outside any string or bracket (where a reader
starts fresh), a longer statement at its line ends.

User data (``--conll PATH``): CoNLL-style files, one token a line, its fields separated by
whitespace: the FIRST field is the token, the LAST is its tag (``EU NNP B-NP B-ORG``: the
tag is ``B-ORG``); a blank line between sentences; ``-DOCSTART-`` lines are skipped. Held-out
sentences come from ``--val PATH`` / ``--test PATH`` (same format) or are cut from the
sentences, shuffled with the run's seed (``val_fraction`` / ``test_fraction``).
"""

from __future__ import annotations

import bisect
import io
import keyword
import os
import random
import sysconfig
import tokenize
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .pairs import _line_of

TAGGED_DATASETS: tuple[str, ...] = ("python-tokens",)
PYTHON_TAGS = ("whitespace", "name", "keyword", "operator", "number", "string", "comment")
DEFAULT_MAX_CHARS = 1_500_000
DOCSTART = "-DOCSTART-"

Sentence = tuple[list[str], list[str]]  # (tokens, a tag per token)

_KEYWORDS = frozenset(keyword.kwlist)
_STRING_START = {getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START")
                 if hasattr(tokenize, n)}  # Python 3.12+: strings in pieces
_STRING_END = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END")
               if hasattr(tokenize, n)}
_CLASS = {tokenize.NUMBER: "number", tokenize.STRING: "string", tokenize.COMMENT: "comment",
          tokenize.OP: "operator"}


@dataclass
class Tagged:
    """The splits of tagged sequences, the tag set and what kind of tokens they are."""

    train: list[Sentence]
    val: list[Sentence]
    test: list[Sentence]
    tags: list[str]
    kind: str  # "char" (python-tokens) or "word" (CoNLL)
    source: str  # the data set's name or the --conll path
    split: str  # "fixed" (a built-in's), "files" (--val/--test) or "fraction"


# ---- python-tokens ------------------------------------------------------------------------

def python_token_tags(source: str) -> list[str]:
    """The token class of every character of ``source`` (see the module doc); a
    ``tokenize.TokenError`` or ``SyntaxError`` where ``tokenize`` cannot read it.

    Example:
        >>> src = "if x1 > 2.5:  # big\\n    s = 'a'\\n"
        >>> tags = python_token_tags(src)
        >>> list(dict.fromkeys(tags))                     # each class, in order of appearance
        ['keyword', 'whitespace', 'name', 'operator', 'number', 'comment', 'string']
        >>> tags[3:5], tags[8:11], tags[-2:]              # x1, 2.5, the quote and newline
        (['name', 'name'], ['number', 'number', 'number'], ['string', 'whitespace'])
    """
    return tags_and_cuts(source)[0]


def tags_and_cuts(source: str) -> tuple[list[str], list[int]]:
    """``python_token_tags`` and the offsets after which a reader starts fresh (the ends of
    NEWLINE and NL tokens: never inside a string or bracket), from one pass of ``tokenize``."""
    starts = [0]  # each line's offset, split as tokenize's readline splits: at "\n" only
    for line in io.StringIO(source, newline="").readlines():
        starts.append(starts[-1] + len(line))
    tags, cuts = ["whitespace"] * len(source), []
    depth, opened = 0, 0  # f-strings being read, and where the outermost began
    for tok in tokenize.generate_tokens(io.StringIO(source, newline="").readline):
        if tok.type == tokenize.ERRORTOKEN:
            raise tokenize.TokenError(f"cannot tokenize {tok.string!r}", tok.start)
        a = starts[tok.start[0] - 1] + tok.start[1]
        b = starts[tok.end[0] - 1] + tok.end[1]
        if tok.type in _STRING_START:
            depth, opened = depth + 1, a if depth == 0 else opened
        elif tok.type in _STRING_END:
            depth -= 1
            if depth == 0:
                tags[opened:b] = ["string"] * (b - opened)
        elif tok.type in (tokenize.NEWLINE, tokenize.NL):
            if tok.string:
                cuts.append(starts[tok.end[0]])
        elif depth == 0 and tok.string and (tok.type == tokenize.NAME or tok.type in _CLASS):
            if source[a:b] != tok.string:  # the offsets must be characters: never guess
                raise tokenize.TokenError(f"token {tok.string!r} is not at {tok.start}",
                                          tok.start)
            kind = (("keyword" if tok.string in _KEYWORDS else "name")
                    if tok.type == tokenize.NAME else _CLASS[tok.type])
            tags[a:b] = [kind] * (b - a)
    return tags, sorted({*cuts, len(source)})


def chunk(source: str, tags: list[str], seq_len: int, cuts: list[int]) -> list[Sentence]:
    """``source`` in pieces of at most ``seq_len`` characters, cut at ``cuts`` where it can,
    else at a line end, else anywhere."""
    out, start = [], 0
    while start < len(source):
        i = bisect.bisect_right(cuts, start + seq_len) - 1
        end = cuts[i] if i >= 0 and cuts[i] > start else None
        if end is None:  # one statement longer than seq_len: at its last line end that fits
            nl = source.rfind("\n", start, start + seq_len)
            end = nl + 1 if nl >= start else min(start + seq_len, len(source))
        out.append((list(source[start:end]), tags[start:end]))
        start = end
    return out


def python_files() -> Iterator[tuple[str, str]]:
    """(relative path, text) of the standard-library files, in the order of a hash of their
    path (a fixed mix of the library's packages, the same on every machine)."""
    from .corpora import python_source_files

    root = Path(sysconfig.get_paths()["stdlib"])
    named = [(p.relative_to(root).as_posix(), p) for p in python_source_files()]
    named.sort(key=lambda np_: (_hash(np_[0]), np_[0]))
    for name, path in named:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "gencodec.py" not in text[:1000]:  # a generated table, not code anyone wrote
            yield name, text


def _hash(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def split_of(name: str) -> str:
    """``test`` for 1 file in 10, ``val`` for another 1 in 10, else ``train``: by a hash of
    the file's path."""
    return {0: "test", 1: "val"}.get(_hash(name) % 10, "train")


def python_tokens(max_chars: int | None = DEFAULT_MAX_CHARS, seq_len: int = 256) -> Tagged:
    """The built-in ``python-tokens`` splits (module doc): at most ``max_chars`` training
    characters, a tenth of that (at least 20,000) for validation and for test."""
    if max_chars is not None and max_chars < 1:
        raise UserError(f"--max-chars must be a positive number of characters, got {max_chars}")
    caps = {"train": max_chars, "val": None if max_chars is None else max(max_chars // 10,
                                                                          20_000)}
    caps["test"] = caps["val"]
    splits: dict[str, list[Sentence]] = {"train": [], "val": [], "test": []}
    taken = dict.fromkeys(splits, 0)
    for name, text in python_files():
        split = split_of(name)
        if caps[split] is not None and taken[split] >= caps[split]:
            if all(caps[s] is not None and taken[s] >= caps[s] for s in splits):
                break
            continue
        try:
            tags, cuts = tags_and_cuts(text)
        except (tokenize.TokenError, SyntaxError):  # IndentationError too: skipped
            continue
        splits[split] += chunk(text, tags, seq_len, cuts)
        taken[split] += len(text)
    if not splits["train"]:
        raise UserError(f"found no standard-library source under "
                        f"{sysconfig.get_paths()['stdlib']}; give your own data with --conll")
    return Tagged(splits["train"], splits["val"], splits["test"], list(PYTHON_TAGS), "char",
                  "python-tokens", "fixed")


# ---- CoNLL files --------------------------------------------------------------------------

def read_conll(path: str | Path, flag: str = "--conll") -> list[Sentence]:
    """The sentences of a CoNLL-style file (module doc); every problem a ``UserError``.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.conll"
        >>> _ = f.write_text("-DOCSTART- O\\n\\nEU NNP B-ORG\\nrejects VBZ O\\n\\nPeter B-PER\\n")
        >>> read_conll(f)
        [(['EU', 'rejects'], ['B-ORG', 'O']), (['Peter'], ['B-PER'])]
    """
    path = Path(os.path.expanduser(str(path)))
    text = _read_text(path, flag)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:  # a sentence ends
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise UserError(f"{path}: line {number} has no tag ({line.strip()!r}); each line "
                            "is a token, then its tag as the last field, separated by spaces "
                            "or tabs")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise UserError(f"{path} holds no tagged tokens; give {flag} a file of lines "
                        "'TOKEN TAG', a blank line between sentences")
    return sentences


def _read_text(path: Path, flag: str) -> str:
    if path.is_dir():
        raise UserError(f"{path} is a directory; give {flag} a CoNLL file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}; check the path given to {flag}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}; check the path given to "
                        f"{flag}") from None
    if not data.strip():
        raise UserError(f"{path} is empty; give {flag} a file of lines 'TOKEN TAG', a blank "
                        "line between sentences")
    nul = data.find(b"\0", 0, 8192)
    if nul >= 0:
        raise UserError(f"{path} is a binary file, not CoNLL text (a NUL byte on line "
                        f"{_line_of(data, nul)}); give {flag} a text file of lines "
                        "'TOKEN TAG'")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} on line "
                        f"{_line_of(data, e.start)}); convert it, e.g. iconv -f "
                        "latin1 -t utf-8") from None


def load_tagged(dataset: str | None = None, conll: str | Path | None = None, *,
                val_path: str | Path | None = None, test_path: str | Path | None = None,
                val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                max_chars: int | None = DEFAULT_MAX_CHARS, seq_len: int = 256) -> Tagged:
    """The splits of a built-in data set or of the user's CoNLL file (module doc); a sentence
    longer than ``seq_len`` tokens is cut into pieces that long."""
    if seq_len < 1:
        raise UserError(f"--seq-len must be a positive number of tokens, got {seq_len}")
    if dataset is not None and conll is not None:
        raise UserError("give either --dataset (built in) or --conll PATH (your file), not both")
    if dataset is not None:
        if dataset not in TAGGED_DATASETS:
            raise UserError(f"unknown dataset {dataset!r} for the tagger; choose "
                            f"{', '.join(TAGGED_DATASETS)}, or give your own file with "
                            "--conll PATH")
        if val_path or test_path:
            raise UserError(f"--dataset {dataset} has its own fixed split; --val and --test go "
                            "with --conll")
        return python_tokens(max_chars, seq_len)
    if conll is None:
        raise UserError("give the tagger data: --dataset python-tokens or --conll PATH")
    train = read_conll(conll)
    val = read_conll(val_path, "--val") if val_path else None
    test = read_conll(test_path, "--test") if test_path else None
    split = "files" if val_path or test_path else "fraction"
    if val is None or test is None:
        train, cut_val, cut_test = _cut(train, 0.0 if val is not None else val_fraction,
                                        0.0 if test is not None else test_fraction, seed)
        val = cut_val if val is None else val
        test = cut_test if test is None else test
    tags = sorted({t for _, ts in train for t in ts})
    if len(tags) < 2:
        raise UserError(f"{conll}: every training token has the tag {tags[0]!r}; a tagger needs "
                        "at least two tags to tell apart")
    for name, part in (("--val", val), ("--test", test)):
        unknown = sorted({t for _, ts in part for t in ts} - set(tags))
        if unknown:
            raise UserError(f"the {name} sentences have tags the training sentences never do: "
                            f"{', '.join(map(repr, unknown[:5]))}; add examples of them to "
                            "the training file")
    return Tagged(*(_pieces(p, seq_len) for p in (train, val, test)), tags, "word", str(conll),
                  split)


def _cut(sentences: list[Sentence], val_fraction: float, test_fraction: float, seed: int
         ) -> tuple[list[Sentence], list[Sentence], list[Sentence]]:
    """Train, val and test sentences, shuffled with ``seed``."""
    for name, f in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= f < 1:
            raise UserError(f"{name} must be in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1:
        raise UserError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction} "
                        "leave no training sentences; make them smaller")
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val, n_test = (round(n * f) if f == 0 or n < 3 else max(1, round(n * f))
                     for f in (val_fraction, test_fraction))
    if n - n_val - n_test < 1:
        raise UserError(f"{n} sentences are too few to hold some out; give more, or --val and "
                        "--test files")
    pick = [sentences[i] for i in order]
    return pick[n_val + n_test:], pick[:n_val], pick[n_val:n_val + n_test]


def _pieces(sentences: list[Sentence], seq_len: int) -> list[Sentence]:
    return [(tokens[i:i + seq_len], tags[i:i + seq_len]) for tokens, tags in sentences
            for i in range(0, len(tokens), seq_len)]
