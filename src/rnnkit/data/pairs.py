"""(source, target) string pairs for encoder-decoder (sequence-to-sequence) tasks.

Built in (``--dataset NAME``), generated, no download; each is deterministic and has a fixed
80/10/10 train/val/test split that does not depend on the run's ``--seed`` (the generator's
own seed draws and shuffles), so every run is scored on the same held-out pairs:

* ``addition``: the Keras ``addition_rnn`` example: ``"535+61" -> "596"``. Each operand has
  1 to ``digits`` digits (the digit count uniform, then the number uniform among those with
  that count), no spaces or padding. A question and its mirror (``61+535``) count as one, and
  no question appears twice, so the held-out pairs test arithmetic, not recall. For small
  ``digits`` there are fewer distinct questions than asked for: ``digits=2`` has 5,050 (pairs
  of 0..99), ``digits=1`` 55. ``reverse`` writes the source backwards (``"16+535"``: Keras's
  trick, which puts the low digits first), never the target. 50,000 questions by default.
* ``dates``: a date as people write it -> ISO 8601: ``"22 novembre 2026" -> "2026-11-22"``,
  ``"Sunday, November 22, 2026"``, ``"22.11.26"``: CLDR's short, medium, long and full
  formats (babel) in 8 locales. Years run 1950 to 2049, the window in which a two-digit year
  has one reading (``26`` is 2026, ``67`` is 1967). Numeric short dates can be ambiguous
  between locales (en_US ``3/4/05`` is 4 March, es_ES ``3/4/05`` is 3 April; en_US and it_IT
  ``11/12/26`` likewise): a source that some other date in the window would also be written
  as, in some locale and style of the set, is left out entirely, whether or not that other
  writing was drawn. With the default locales that is 36 % of en_US's and es_ES's short
  dates and 2 % of it_IT's; no other style collides (en_GB, fr_FR and pt_BR write the same
  short dates alike, which is no ambiguity). Non-breaking spaces become plain spaces, so
  every source can be typed. Each source appears once. 40,000 pairs by default.
* ``numbers``: number words -> digits: ``"twenty-one" -> "21"``, ``"vingt et un"``,
  ``"einundzwanzig"`` (num2words, in English, French, German, Spanish and Italian), 0 to
  999,999, every digit count equally likely to be drawn; each source once, so the short
  numbers run out (47 one-digit sources: "zero", "uno" and "six" are shared by two languages;
  450 two-digit) and the longer ones fill the rest. A source drawn for two different numbers
  would be dropped (no such words exist below 10,000 in these languages). 40,000 by default.

The user's pairs (``--tsv PATH``): UTF-8 text, one ``source<TAB>target`` per line (a BOM and
``\\r\\n`` line ends are accepted, blank lines skipped, each side stripped; duplicates kept).
A first line of column names is a header, not a pair (``header=None``, the default, decides;
``True`` / ``False``: ``--header`` / ``--no-header``). The rule is conservative, as no rule
tells ``en<TAB>fr`` from a real first pair such as ``is<TAB>es`` in every file: both sides
common column names (``source``, ``input``, ``question`` ..., also ``source_text``) or
English language names (``English<TAB>French``) make a header; both sides language codes
(``en<TAB>fr``, ``eng<TAB>fra``) only above phrases (at least half the other pairs have a
space), never above single words; a line that recurs as a pair (either way round) is data.
Either way the decision comes back as a note for stderr, with the flag that reverses it.
Held-out pairs come from ``--val PATH`` / ``--test PATH`` (same format) or are cut from the
rows, shuffled with the run's seed (``--val-fraction``, ``--test-fraction``).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import random
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

PAIR_DATASETS: tuple[str, ...] = ("addition", "dates", "numbers")
DATE_STYLES: tuple[str, ...] = ("short", "medium", "long", "full")
DATE_LOCALES: tuple[str, ...] = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_BR",
                                 "nl_NL")
NUMBER_LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "es", "it")

_SEED = 1234  # the built-ins' own seed: their split must not move with the run's --seed
_FIRST_DAY, _LAST_DAY = dt.date(1950, 1, 1), dt.date(2049, 12, 31)
_DAYS = (_LAST_DAY - _FIRST_DAY).days + 1
_TSV_FORMAT = "each line must be source<TAB>target"
# a header's sides, compared case- and punctuation-blind ("Source Text" -> "sourcetext");
# a suffix of _NAME_SUFFIXES is dropped first ("sourcetext" -> "source")
_COLUMN_NAMES = frozenset({
    "source", "target", "src", "tgt", "trg", "input", "inputs", "output", "outputs",
    "question", "answer", "query", "response", "prompt", "completion", "original",
    "translation", "text"})
_NAME_SUFFIXES = ("text", "texts", "sentence", "sentences", "string", "seq", "sequence",
                  "lang", "language", "word", "words", "phrase", "phrases")
# ISO 639-2 codes of languages often paired (Tatoeba's files use them); the 2-letter codes
# come from babel
_CODES_3 = frozenset({
    "eng", "fra", "fre", "deu", "ger", "spa", "ita", "por", "nld", "dut", "rus", "zho", "chi",
    "cmn", "jpn", "kor", "ara", "tur", "pol", "swe", "heb", "hin", "ukr", "ell", "gre", "ces",
    "cze", "ron", "rum", "hun", "fin", "dan", "nor", "vie", "tha", "ind"})


@dataclass
class Pairs:
    """A seq2seq task's pairs, split, and where they came from (for messages and
    ``summary.json``)."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    source: str  # "addition (3 digits, reversed)", "dates", "numbers", or the TSV path
    split: str  # "fixed" (built-in), "fraction" (cut from the TSV) or "files" (--val/--test)
    notes: list[str] = field(default_factory=list)  # for stderr: a first line taken as header


def load_pairs(dataset: str | None = None, tsv: str | Path | None = None, *, digits: int = 3,
               reverse: bool = False, val_path: str | Path | None = None,
               test_path: str | Path | None = None, val_fraction: float = 0.1,
               test_fraction: float = 0.1, seed: int = 0, header: bool | None = None) -> Pairs:
    """The pairs of a built-in ``dataset`` or of the user's ``tsv`` file, split.

    A built-in has its fixed split (``seed`` and the fractions do not apply; ``digits`` and
    ``reverse`` are ``addition``'s: ``reverse`` with another data set is an error). A TSV uses
    ``val_path`` / ``test_path`` when given, and otherwise cuts ``val_fraction`` and
    ``test_fraction`` of its rows (at least one each), shuffled with ``seed``; given only one
    of the files, the other part is cut. ``header`` applies to every file (see the module doc).

    Example:
        >>> p = load_pairs("addition", digits=2)
        >>> len(p.train), len(p.val), len(p.test), p.source, p.split
        (4040, 505, 505, 'addition (2 digits)', 'fixed')
    """
    if dataset is None and tsv is None:
        raise UserError("give the pairs: --dataset " + "|".join(PAIR_DATASETS)
                        + " for a built-in data set, or --tsv PATH for your own")
    if dataset is not None and tsv is not None:
        raise UserError("give either a built-in data set (--dataset) or your own pairs (--tsv), "
                        "not both")
    if tsv is None:
        if header is not None:
            raise UserError(f"--{'' if header else 'no-'}header goes with --tsv; the built-in "
                            f"{dataset!r} has no header line: drop it")
        return _builtin(dataset, digits, reverse, val_path, test_path)
    if reverse:
        raise UserError("--reverse goes with --dataset addition, not --tsv; reverse the sources "
                        "in your file if you want them reversed")
    for name, f in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= f < 0.5:
            raise UserError(f"{name} must be at least 0 and below 0.5, got {f}")
    notes: list[str] = []
    rows = _read_tsv(tsv, "--tsv", header, notes)
    val = _read_tsv(val_path, "--val", header, notes) if val_path is not None else None
    test = _read_tsv(test_path, "--test", header, notes) if test_path is not None else None
    split = "fraction" if val is None and test is None else "files"
    if val is None or test is None:
        if len(rows) < 10:
            raise UserError(f"{tsv} has {len(rows)} pair{'' if len(rows) == 1 else 's'}, too few "
                            "to cut held-out pairs from; give at least 10 (more to learn "
                            "anything), or give --val PATH and --test PATH")
        random.Random(seed).shuffle(rows)
        # both parts are fractions of all the rows; floored, so that train keeps at least
        # 1 - val_fraction - test_fraction > 0 of them
        n = len(rows)
        n_val = _part(n, val_fraction) if val is None else 0
        n_test = _part(n, test_fraction) if test is None else 0
        val = rows[n - n_val - n_test:n - n_test] if val is None else val
        test = rows[n - n_test:] if test is None else test
        rows = rows[:n - n_val - n_test]
    return Pairs(rows, val, test, str(tsv), split, notes)


def _part(n: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, int(n * fraction))


def _builtin(dataset: str, digits: int, reverse: bool, val_path: str | Path | None,
             test_path: str | Path | None) -> Pairs:
    if dataset not in PAIR_DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(PAIR_DATASETS)}, "
                        "or give your own pairs with --tsv PATH")
    if val_path is not None or test_path is not None:
        raise UserError(f"--val/--test go with --tsv; the built-in {dataset!r} has its own "
                        "fixed validation and test pairs")
    if reverse and dataset != "addition":
        raise UserError(f"--reverse goes with --dataset addition, not {dataset!r}")
    if dataset == "addition":
        rows = addition_pairs(digits, reverse)
        source = f"addition ({digits} digit{'' if digits == 1 else 's'}"
        source += ", reversed)" if reverse else ")"
    else:
        rows = date_pairs() if dataset == "dates" else number_pairs()
        source = dataset
    random.Random(_SEED).shuffle(rows)
    k = len(rows) // 10
    return Pairs(rows[:len(rows) - 2 * k], rows[len(rows) - 2 * k:len(rows) - k],
                 rows[len(rows) - k:], source, "fixed")


# ---- drawing unique pairs -----------------------------------------------------------------

def _keys(rng: random.Random, draw: Callable[[], Hashable], every: Callable[[], list],
          space: int, n: int) -> Iterator:
    """Keys for ``_collect``: random draws, or all ``space`` keys shuffled when ``n`` asks for
    more than half of them (drawing would spend ever longer finding the last unseen ones)."""
    if n <= space // 2:
        for _ in range(20 * n + 1000):  # plenty, unless most sources are refused
            yield draw()
    keys = every()
    rng.shuffle(keys)
    yield from keys


def _collect(keys: Iterable, n: int, canon: Callable[[Hashable], Hashable],
             make: Callable[[Hashable], tuple[str, str] | None]) -> tuple[tuple[str, str], ...]:
    """Up to ``n`` pairs ``make(key)`` in the order drawn: each key (up to ``canon``) and each
    source once; a source made with two targets is dropped with all its copies."""
    seen: set = set()
    target_of: dict[str, str | None] = {}  # None: ambiguous
    order: list[str] = []
    kept = 0
    for key in keys:
        if kept >= n:
            break
        c = canon(key)
        if c in seen:
            continue
        seen.add(c)
        pair = make(key)
        if pair is None:
            continue
        s, t = pair
        if s not in target_of:
            target_of[s] = t
            order.append(s)
            kept += 1
        elif target_of[s] is not None and target_of[s] != t:
            target_of[s] = None
            kept -= 1
    return tuple((s, target_of[s]) for s in order if target_of[s] is not None)


def _check_n(n: int) -> None:
    if n < 1:
        raise UserError(f"the number of pairs must be positive, got {n}")


def _identity(key: Hashable) -> Hashable:
    return key


# ---- addition -----------------------------------------------------------------------------

def addition_pairs(digits: int = 3, reverse: bool = False, n: int = 50_000,
                   seed: int = _SEED) -> list[tuple[str, str]]:
    """``n`` distinct questions ``"a+b"`` with their sums, operands of 1 to ``digits`` digits
    (fewer when fewer exist: all 5,050 for ``digits=2``); ``reverse`` reverses the sources.

    Example:
        >>> addition_pairs(1, n=3, seed=0)
        [('6+4', '10'), ('6+7', '13'), ('9+8', '17')]
    """
    if not (isinstance(digits, int) and 1 <= digits <= 9):
        raise UserError(f"--digits must be from 1 to 9, got {digits}")
    _check_n(n)
    pairs = _addition(digits, n, seed)
    return [(s[::-1], t) for s, t in pairs] if reverse else list(pairs)


@functools.lru_cache(maxsize=8)
def _addition(digits: int, n: int, seed: int) -> tuple[tuple[str, str], ...]:
    rng = random.Random(seed)
    top = 10 ** digits

    def number() -> int:
        count = rng.randint(1, digits)
        return rng.randint(0 if count == 1 else 10 ** (count - 1), 10 ** count - 1)

    def every() -> list[tuple[int, int]]:  # each unordered pair, operands in random order
        return [(a, b) if rng.random() < 0.5 else (b, a) for a in range(top)
                for b in range(a, top)]

    keys = _keys(rng, lambda: (number(), number()), every, top * (top + 1) // 2, n)
    return _collect(keys, n, lambda k: (min(k), max(k)),
                    lambda k: (f"{k[0]}+{k[1]}", str(k[0] + k[1])))


# ---- dates --------------------------------------------------------------------------------

def date_pairs(n: int = 40_000, seed: int = _SEED, locales: Sequence[str] = DATE_LOCALES,
               styles: Sequence[str] = DATE_STYLES) -> list[tuple[str, str]]:
    """``n`` dates from 1950 to 2049 written in random ``locales`` and ``styles`` -> ISO 8601.
    Each source once; a source that another date could be written as (in any of ``locales``
    and ``styles``) is left out.

    Example:
        >>> date_pairs(2, seed=0, locales=["fr_FR"], styles=["long"])
        [('15 février 2019', '2019-02-15'), ('7 avril 1957', '1957-04-07')]
    """
    _check_n(n)
    bad = [s for s in styles if s not in DATE_STYLES]
    if bad or not styles or not locales:
        raise UserError(f"date styles must be some of {', '.join(DATE_STYLES)} and at least one "
                        f"locale is needed; got styles {list(styles)}, locales {list(locales)}")
    return list(_dates(n, seed, tuple(locales), tuple(styles)))


@functools.lru_cache(maxsize=8)
def _dates(n: int, seed: int, locales: tuple[str, ...],
           styles: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    writers = [_DateWriter(loc, style) for loc in locales for style in styles]
    rng = random.Random(seed)
    clear: dict[str, bool] = {}  # source -> whether it has only one reading

    def make(key: tuple[int, int]) -> tuple[str, str] | None:
        day = _FIRST_DAY + dt.timedelta(days=key[0])
        s = writers[key[1]].write(day)
        if s not in clear:
            clear[s] = not any(w.read_otherwise(s, day) for w in writers)
        return (s, day.isoformat()) if clear[s] else None

    def every() -> list[tuple[int, int]]:
        return list(itertools.product(range(_DAYS), range(len(writers))))

    keys = _keys(rng, lambda: (rng.randrange(_DAYS), rng.randrange(len(writers))), every,
                 _DAYS * len(writers), n)
    return _collect(keys, n, _identity, make)


def _plain(text: str) -> str:
    """babel's no-break spaces (U+00A0, U+202F) as plain spaces, so a user can type it."""
    return text.replace("\u00a0", " ").replace("\u202f", " ").strip()


class _DateWriter:
    """One (locale, style): writes a date, and tells whether it writes another date of the
    window the same way (a regex made from the CLDR pattern proposes the reading, formatting
    it back confirms: exact, without writing all 36,525 days in every locale and style)."""

    def __init__(self, locale: str, style: str):
        from babel import Locale, UnknownLocaleError
        from babel.dates import format_date, tokenize_pattern

        try:
            self.locale = Locale.parse(locale)  # parsed once: format_date would reparse a str
        except (UnknownLocaleError, ValueError, TypeError) as e:
            raise UserError(f"unknown locale {locale!r} for the dates data set (babel knows "
                            "e.g. en_US, fr_FR, de_DE)") from e
        self.style, self._format = style, format_date
        self._regex, self._fields = self._reader(tokenize_pattern(
            self.locale.date_formats[style].pattern))
        self._table: dict[str, set[dt.date]] | None = None  # for patterns the regex can't read
        self._months: dict[str, set[int]] = {}  # a name -> the months it may be (narrow: J)
        for context in self.locale.months.values():
            for width in context.values():
                for month, name in width.items():
                    self._months.setdefault(_plain(name), set()).add(month)

    def write(self, day: dt.date) -> str:
        return _plain(self._format(day, format=self.style, locale=self.locale))

    def _reader(self, tokens: list) -> tuple[re.Pattern | None, list[tuple[str, int]]]:
        parts, fields = [], []
        for kind, value in tokens:
            if kind == "chars":
                parts.append(re.escape(value.replace("\u00a0", " ").replace("\u202f", " ")))
                continue
            char, width = value
            if char in "dMLy" and (width <= 2 or char == "y"):
                parts.append(r"(\d{2})" if width == 2 else r"(\d{1,4})")
            elif char in "ML":
                parts.append("(" + "|".join(map(re.escape, self._names("months"))) + ")")
            elif char == "E":
                parts.append("(?:" + "|".join(map(re.escape, self._names("days"))) + ")")
                continue
            else:
                return None, []  # an era, a quarter ...: read through the full table instead
            fields.append((char, width))
        if {c.replace("L", "M") for c, _ in fields} != {"d", "M", "y"} or len(fields) != 3:
            return None, []
        return re.compile(r"\s*" + "".join(parts) + r"\s*"), fields

    def _names(self, what: str) -> list[str]:
        names = {_plain(name) for context in getattr(self.locale, what).values()
                 for width in context.values() for name in width.values()}
        return sorted(names, key=len, reverse=True)

    def read_otherwise(self, text: str, day: dt.date) -> bool:
        """Whether this locale and style writes a date other than ``day`` (1950 to 2049) as
        ``text``."""
        if self._regex is None:
            if self._table is None:
                self._table = {}
                for k in range(_DAYS):
                    other = _FIRST_DAY + dt.timedelta(days=k)
                    self._table.setdefault(self.write(other), set()).add(other)
            return bool(self._table.get(text, set()) - {day})
        match = self._regex.fullmatch(text)
        if match is None:
            return False
        values = dict(zip((c.replace("L", "M") for c, _ in self._fields), match.groups()))
        year = int(values["y"])
        if len(values["y"]) == 2 and ("y", 2) in self._fields:  # the window's reading of yy
            year += 2000 if year < 50 else 1900
        m = values["M"]
        for month in [int(m)] if m.isdigit() else self._months.get(m, ()):
            try:
                other = dt.date(year, month, int(values["d"]))
            except ValueError:
                continue
            # the regex only proposes: formatting the reading back decides
            if other != day and _FIRST_DAY <= other <= _LAST_DAY and self.write(other) == text:
                return True
        return False


# ---- numbers ------------------------------------------------------------------------------

def number_pairs(n: int = 40_000, seed: int = _SEED, languages: Sequence[str] = NUMBER_LANGUAGES,
                 max_value: int = 999_999) -> list[tuple[str, str]]:
    """``n`` numbers from 0 to ``max_value`` in words (num2words, random ``languages``) ->
    digits; each digit count equally likely to be drawn, each source once.

    Example:
        >>> number_pairs(3, seed=1, languages=["fr"], max_value=999)
        [('neuf', '9'), ('vingt-cinq', '25'), ('soixante-dix', '70')]
    """
    _check_n(n)
    from num2words import CONVERTER_CLASSES

    unknown = [lang for lang in languages if lang not in CONVERTER_CLASSES]
    if unknown or not languages:
        what = f"does not know {', '.join(map(repr, unknown))}" if unknown else "needs a language"
        raise UserError(f"num2words {what}; use e.g. {', '.join(NUMBER_LANGUAGES)}")
    if max_value < 1:
        raise UserError(f"max_value must be at least 1, got {max_value}")
    return list(_numbers(n, seed, tuple(languages), max_value))


@functools.lru_cache(maxsize=8)
def _numbers(n: int, seed: int, languages: tuple[str, ...],
             max_value: int) -> tuple[tuple[str, str], ...]:
    from num2words import num2words

    rng = random.Random(seed)
    counts = len(str(max_value))

    def draw() -> tuple[int, int]:
        count = rng.randint(1, counts)
        lo = 0 if count == 1 else 10 ** (count - 1)
        return rng.randint(lo, min(10 ** count - 1, max_value)), rng.randrange(len(languages))

    def every() -> list[tuple[int, int]]:
        return list(itertools.product(range(max_value + 1), range(len(languages))))

    def make(key: tuple[int, int]) -> tuple[str, str]:
        return _plain(num2words(key[0], lang=languages[key[1]])), str(key[0])

    keys = _keys(rng, draw, every, (max_value + 1) * len(languages), n)
    return _collect(keys, n, _identity, make)


# ---- the user's pairs ---------------------------------------------------------------------

def read_tsv(path: str | Path, header: bool | None = None) -> list[tuple[str, str]]:
    """The pairs of a UTF-8 file holding one ``source<TAB>target`` per line, each side
    stripped; blank lines skipped, a BOM and ``\\r\\n`` accepted; a first line of column names
    skipped (``header``: see the module doc). Every problem is a ``UserError`` naming the file
    and the line.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.tsv"
        >>> _ = f.write_text("source\\ttarget\\nhello\\tbonjour\\n\\n cat \\tchat\\n")
        >>> read_tsv(f)
        [('hello', 'bonjour'), ('cat', 'chat')]
    """
    return _read_tsv(path, None, header, [])


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_tsv(path: str | Path, flag: str | None, header: bool | None,
              notes: list[str]) -> list[tuple[str, str]]:
    """``read_tsv``; a note on the first line (taken as a header or not) goes to ``notes``."""
    path = Path(os.path.expanduser(str(path)))
    text = _read_text(path, flag)
    # split("\n"), not splitlines(): that also splits at \v, \f, U+2028 ... and the line
    # numbers in the messages would not be the editor's
    lines = [(number, line) for number, line in
             enumerate(text.removeprefix("\ufeff").split("\n"), start=1) if line.strip()]
    if header and lines:
        lines = lines[1:]  # --header: whatever the first line holds
    csv_like = "\t" not in text
    pairs = [_pair(path, number, line, csv_like) for number, line in lines]
    if header is None and pairs:
        pairs = _drop_header(path, lines[0][0], pairs, notes)
    if not pairs:
        raise UserError(f"{path} holds no pairs; write one source<TAB>target per line")
    return pairs


def _read_text(path: Path, flag: str | None) -> str:
    given = f" given to {flag}" if flag else ""
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a TSV file{given} "
                        f"({_TSV_FORMAT})")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}; check the path{given}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}; check the path{given}") from None
    nul = data.find(b"\0", 0, 8192)
    if nul >= 0:
        raise UserError(f"{path} is not a UTF-8 text file (a NUL byte on line "
                        f"{_line_of(data, nul)}); give a TSV file ({_TSV_FORMAT})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not a UTF-8 text file (byte 0x{data[e.start]:02x} on line "
                        f"{_line_of(data, e.start)}); convert it, e.g. "
                        "iconv -f latin1 -t utf-8") from None


def _pair(path: Path, number: int, line: str, csv_like: bool) -> tuple[str, str]:
    """One line's (source, target); ``csv_like``: the file has no tab at all."""
    tabs = line.count("\t")
    if tabs == 0 and csv_like and ("," in line or ";" in line):
        what = "commas" if "," in line else "semicolons"
        raise UserError(f"{path}: line {number} has {what} and no tab: the file looks like CSV; "
                        "save it as tab-separated (TSV): source<TAB>target a line")
    if tabs != 1:
        what = "no tab" if tabs == 0 else f"{tabs} tabs (a tab inside a side is ambiguous)"
        raise UserError(f"{path}: line {number} has {what}: {_TSV_FORMAT}")
    source, target = (side.strip() for side in line.split("\t"))
    for side, value in (("source", source), ("target", target)):
        if not value:
            raise UserError(f"{path}: line {number} has an empty {side}: {_TSV_FORMAT}, "
                            "both non-empty")
    return source, target


# ---- a header line ------------------------------------------------------------------------

def _drop_header(path: Path, number: int, pairs: list[tuple[str, str]],
                 notes: list[str]) -> list[tuple[str, str]]:
    """``pairs`` without the first when it is a header (the module doc's rule); a note on
    a first line that is or looks like one."""
    first, rest = pairs[0], pairs[1:]
    kind = header_kind(*first)
    if kind is None or first in rest or first[::-1] in rest:  # a pair that recurs is data
        return pairs
    shown = f"{first[0]!r}<TAB>{first[1]!r}"
    if kind == "codes" and sum(" " in s or " " in t for s, t in rest) * 2 < max(1, len(rest)):
        # above single words, two codes may be a real pair (English "is", Spanish "es")
        notes.append(f"{path}: line {number} ({shown}) looks like a header of language codes "
                     "but was kept as a pair; give --header if it is a header")
        return pairs
    notes.append(f"{path}: line {number} ({shown}) is taken as a header, not a pair; give "
                 "--no-header to keep it as a pair")
    return rest


def header_kind(source: str, target: str) -> str | None:
    """``"names"`` when both sides are column names or English language names, ``"codes"``
    when both are language codes (and not both names), else None.

    Example:
        >>> header_kind("Source", "target_text"), header_kind("en", "fr")
        ('names', 'codes')
        >>> header_kind("cat", "chat") is None
        True
    """
    if source.casefold() == target.casefold() or max(len(source), len(target)) > 40:
        return None
    if all(_name(side) in _COLUMN_NAMES | _language_names() for side in (source, target)):
        return "names"
    if all(_code(side) for side in (source, target)):
        return "codes"
    return None


def _name(side: str) -> str:
    name = re.sub(r"[^a-z0-9]", "", side.casefold())
    for suffix in _NAME_SUFFIXES:
        if name.endswith(suffix) and name != suffix:
            return name[:-len(suffix)]
    return name


def _code(side: str) -> bool:
    """``en``, ``EN``, ``eng``, ``en_US``, ``pt-BR``: a language code, with a region or not."""
    match = re.fullmatch(r"([A-Za-z]{2,3})(?:[-_][A-Za-z]{2}|[-_]\d{3})?", side)
    if match is None:
        return False
    code = match.group(1).lower()
    return code in _CODES_3 or (len(code) == 2 and code in _language_codes())


@functools.cache
def _language_codes() -> frozenset[str]:
    from babel import Locale

    return frozenset(k for k in Locale("en").languages if len(k) == 2)


@functools.cache
def _language_names() -> frozenset[str]:
    """English names of the 2-letter-code languages, as ``_name`` writes them."""
    from babel import Locale

    names = Locale("en").languages
    return frozenset(re.sub(r"[^a-z0-9]", "", names[k].casefold()) for k in _language_codes())
