"""Seq2seq pairs: the built-in addition, dates and numbers sets, their fixed splits, the
user's TSV file and its errors, and how load_pairs splits it."""

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from babel.dates import format_date
from num2words import num2words

from rnnkit.data import pairs as P
from rnnkit.data.pairs import (
    DATE_LOCALES,
    DATE_STYLES,
    NUMBER_LANGUAGES,
    PAIR_DATASETS,
    Pairs,
    addition_pairs,
    date_pairs,
    load_pairs,
    number_pairs,
    read_tsv,
)
from rnnkit.errors import UserError


def plain(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ").strip()


def unordered(source: str) -> tuple[int, int]:
    a, b = map(int, source.split("+"))
    return min(a, b), max(a, b)


# ---- addition -----------------------------------------------------------------------------

def test_addition_is_correct_arithmetic_on_distinct_questions_of_up_to_3_digits():
    pairs = addition_pairs()
    assert len(pairs) == 50_000
    counts = Counter()
    for source, target in pairs:
        a, b = source.split("+")
        assert int(a) + int(b) == int(target) and target == str(int(target))
        for operand in (a, b):
            assert operand == str(int(operand)) and 1 <= len(operand) <= 3  # no padding
            counts[len(operand)] += 1
    assert len({s for s, _ in pairs}) == len(pairs)
    assert len({unordered(s) for s, _ in pairs}) == len(pairs)  # never a+b and b+a
    # the digit count is uniform when drawn, but there are only 55 questions of two one-digit
    # numbers and 900 of a one- and a two-digit one: the repeats are left out, as in Keras
    assert counts[3] > counts[2] > counts[1] > 5000, counts


def test_reverse_reverses_the_source_only():
    forward, backward = addition_pairs(), addition_pairs(reverse=True)
    assert backward == [(s[::-1], t) for s, t in forward]
    assert addition_pairs(reverse=True) == backward  # the cache hands out copies
    backward.clear()
    assert len(addition_pairs(reverse=True)) == 50_000


def test_small_digits_give_every_distinct_question():
    for digits in (1, 2):
        top = 10 ** digits
        every = {(min(a, b), max(a, b)) for a in range(top) for b in range(top)}
        pairs = addition_pairs(digits)
        assert len(every) == top * (top + 1) // 2 == len(pairs)  # 55 and 5,050
        assert {unordered(s) for s, _ in pairs} == every
        assert all(int(s.split("+")[0]) + int(s.split("+")[1]) == int(t) for s, t in pairs)


def test_addition_depends_only_on_its_seed_and_checks_digits():
    P._addition.cache_clear()
    first = addition_pairs(4, n=2000, seed=5)
    P._addition.cache_clear()
    assert addition_pairs(4, n=2000, seed=5) == first
    assert addition_pairs(4, n=2000, seed=6) != first
    assert max(len(op) for s, _ in first for op in s.split("+")) == 4
    for digits in (0, 10):
        with pytest.raises(UserError, match="from 1 to 9"):
            addition_pairs(digits)


# ---- dates --------------------------------------------------------------------------------

def writings(day: dt.date, locales=DATE_LOCALES, styles=DATE_STYLES) -> set[str]:
    return {plain(format_date(day, format=s, locale=loc)) for loc in locales for s in styles}


def test_every_date_is_its_target_written_in_some_locale_and_style():
    pairs = date_pairs(1500, seed=7)
    assert len(pairs) == 1500 and len({s for s, _ in pairs}) == 1500
    for source, target in pairs:
        day = dt.date.fromisoformat(target)
        assert 1950 <= day.year <= 2049
        assert source in writings(day), (source, target)
        assert source == source.strip() and "\u00a0" not in source and "\u202f" not in source


def test_the_builtin_dates_are_many_languages_with_one_reading_each():
    p = load_pairs("dates")
    rows = p.train + p.val + p.test
    assert (len(p.train), len(p.val), len(p.test)) == (32_000, 4000, 4000)
    assert len({s for s, _ in rows}) == len(rows)
    text = " ".join(s for s, _ in rows)
    for word in ("November", "novembre", "Dezember", "diciembre", "dicembre", "dezembro",
                 "december", "Sunday", "dimanche", "Sonntag"):
        assert word in text
    assert {t[:4] for _, t in rows} >= {"1950", "1999", "2000", "2049"}
    assert any(s.count("/") == 2 for s, _ in rows) and any(s.count(".") == 2 for s, _ in rows)


def test_ambiguous_short_dates_are_left_out_exactly():
    # en_US writes 4 March 2005 as 3/4/05 (M/d/yy), es_ES writes 3 April 2005 the same way
    # (d/M/yy): asking for more than exists returns every unambiguous writing, which a brute
    # force over the window must agree with
    locales, styles = ("en_US", "es_ES"), ("short",)
    assert writings(dt.date(2005, 3, 4), locales, styles) == {"3/4/05", "4/3/05"}
    readings: dict[str, set[dt.date]] = {}
    for k in range(36_525):
        day = dt.date(1950, 1, 1) + dt.timedelta(days=k)
        yy = f"{day.year % 100:02d}"
        for text in (f"{day.month}/{day.day}/{yy}", f"{day.day}/{day.month}/{yy}"):
            readings.setdefault(text, set()).add(day)
    pairs = date_pairs(10**6, locales=locales, styles=styles)
    assert dict(pairs) == {s: min(ds).isoformat() for s, ds in readings.items() if len(ds) == 1}
    assert "3/4/05" not in dict(pairs) and "3/3/05" in dict(pairs)
    assert dict(pairs)["3/13/05"] == "2005-03-13" and dict(pairs)["13/3/05"] == "2005-03-13"
    assert dict(pairs)["1/1/49"] == "2049-01-01" and dict(pairs)["1/1/50"] == "1950-01-01"


def test_no_break_spaces_become_plain_spaces():
    # ru_RU's full style ends "2026\u202fг."
    pairs = date_pairs(50, locales=["ru_RU"], styles=["full"])
    assert len(pairs) == 50 and all(s.endswith(" г.") for s, _ in pairs)
    assert not any("\u202f" in s or "\u00a0" in s for s, _ in pairs)


def test_date_options_are_checked():
    with pytest.raises(UserError, match="unknown locale"):
        date_pairs(10, locales=["xx_YY"])
    with pytest.raises(UserError, match="styles"):
        date_pairs(10, styles=["tiny"])


# ---- numbers ------------------------------------------------------------------------------

def test_every_number_is_its_target_in_words_in_some_language():
    pairs = number_pairs(800, seed=3)
    assert len(pairs) == 800 and len({s for s, _ in pairs}) == 800
    for source, target in pairs:
        assert target == str(int(target)) and int(target) <= 999_999
        assert source in {plain(num2words(int(target), lang=L)) for L in NUMBER_LANGUAGES}
    assert {len(t) for _, t in pairs} == {1, 2, 3, 4, 5, 6}
    languages = {L for s, t in pairs for L in NUMBER_LANGUAGES
                 if plain(num2words(int(t), lang=L)) == s}
    assert languages == set(NUMBER_LANGUAGES)


def test_small_numbers_run_out_and_each_source_appears_once():
    pairs = number_pairs(400, seed=1, languages=["en", "it"], max_value=99)
    # 0..99 in two languages, "zero" shared by both: 199 sources, all of them
    assert len(pairs) == 199 and len({s for s, _ in pairs}) == 199
    assert dict(pairs)["zero"] == "0" and dict(pairs)["ventuno"] == "21"


def test_number_options_are_checked():
    with pytest.raises(UserError, match="'klingon'"):
        number_pairs(10, languages=["en", "klingon"])


def test_builtin_numbers_are_cut_like_the_others(monkeypatch):
    rows = number_pairs(300, seed=2)
    monkeypatch.setattr(P, "number_pairs", lambda: list(rows))
    p = load_pairs("numbers", seed=8)
    assert (len(p.train), len(p.val), len(p.test), p.source, p.split) == (
        240, 30, 30, "numbers", "fixed")
    assert load_pairs("numbers", seed=9) == p and sorted(p.train + p.val + p.test) == sorted(rows)


@pytest.mark.slow  # 40,000 num2words calls: about 3 s
def test_builtin_numbers_have_the_fixed_split():
    p = load_pairs("numbers")
    assert (len(p.train), len(p.val), len(p.test), p.source, p.split) == (
        32_000, 4000, 4000, "numbers", "fixed")
    assert load_pairs("numbers", seed=99) == p
    assert not {s for s, _ in p.train} & {s for s, _ in p.val + p.test}
    assert {"twenty-one", "vingt et un", "einundzwanzig", "veintiuno", "ventuno"} & {
        s for s, _ in p.train + p.val + p.test}


# ---- fixed splits of the built-ins --------------------------------------------------------

def test_builtin_splits_do_not_depend_on_the_run_seed():
    a = load_pairs("addition", seed=1)
    b = load_pairs("addition", seed=2)
    assert a == b and (a.source, a.split) == ("addition (3 digits)", "fixed")
    assert (len(a.train), len(a.val), len(a.test)) == (40_000, 5000, 5000)
    test_questions = {unordered(s) for s, _ in a.test + a.val}
    assert not test_questions & {unordered(s) for s, _ in a.train}  # not even mirrored
    r = load_pairs("addition", digits=2, reverse=True)
    assert r.source == "addition (2 digits, reversed)"
    assert len(r.train) + len(r.val) + len(r.test) == 5050
    d = load_pairs("dates")
    assert load_pairs("dates", seed=5) == d
    assert not {s for s, _ in d.train} & {s for s, _ in d.test}


def test_the_generators_are_deterministic():
    P._dates.cache_clear()
    P._numbers.cache_clear()
    first = date_pairs(300, seed=11), number_pairs(300, seed=11)
    P._dates.cache_clear()
    P._numbers.cache_clear()
    assert (date_pairs(300, seed=11), number_pairs(300, seed=11)) == first
    assert date_pairs(300, seed=12) != first[0]


# ---- the user's TSV -----------------------------------------------------------------------

def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


ROWS = [("hello", "bonjour"), ("the cat", "le chat"), ("naïve 🙂", "naïf"), ("hello", "salut")]


def test_read_tsv_round_trip_strips_sides_skips_blank_lines_keeps_duplicates(tmp_path):
    f = write(tmp_path / "p.tsv", "".join(f" {s}\t{t}  \n\n" for s, t in ROWS + ROWS[:1]))
    assert read_tsv(f) == ROWS + ROWS[:1]
    assert read_tsv(str(f)) == ROWS + ROWS[:1]


def test_read_tsv_accepts_a_bom_and_crlf(tmp_path):
    f = write(tmp_path / "p.tsv", "\ufeff" + "".join(f"{s}\t{t}\r\n" for s, t in ROWS))
    assert read_tsv(f) == ROWS


@pytest.mark.parametrize(("data", "words"), [
    (b"", ["no pairs"]),
    (b"\n  \r\n\n", ["no pairs"]),
    (b"a\tb\nc\x00d\te\n", ["not a UTF-8 text file", "line 2"]),
    ("a\tb\ncaf\u00e9\tx\n".encode("latin-1"), ["not a UTF-8 text file", "line 2", "iconv"]),
    (b"a\tb\n\nno tab here\n", ["line 3 has no tab", "source<TAB>target"]),
    (b"a\tb\nx\ty\tz\n", ["line 2 has 2 tabs", "source<TAB>target"]),
    (b"a\tb\nc\td\nsource\t  \n", ["line 3 has an empty target"]),
    (b" \tb\n", ["line 1 has an empty source"]),
])
def test_read_tsv_names_the_problem_and_the_line(tmp_path, data, words):
    f = write(tmp_path / "bad.tsv", data)
    with pytest.raises(UserError) as e:
        read_tsv(f)
    message = str(e.value)
    assert str(f) in message and "\n" not in message
    for word in words:
        assert word in message


def test_a_csv_file_is_named_as_csv_with_the_fix(tmp_path):
    f = write(tmp_path / "pairs.csv", "source,target\nhello,bonjour\n")
    with pytest.raises(UserError) as e:
        read_tsv(f)
    message = str(e.value)
    assert "line 1 has commas and no tab" in message and "looks like CSV" in message
    assert "save it as tab-separated (TSV)" in message and "\n" not in message
    f = write(tmp_path / "semi.csv", "hello;bonjour\n")
    with pytest.raises(UserError, match="semicolons and no tab: the file looks like CSV"):
        read_tsv(f)
    # a TSV with one broken line is not called CSV, comma or not
    f = write(tmp_path / "p.tsv", "a\tb\nc, d\n")
    with pytest.raises(UserError) as e:
        read_tsv(f)
    assert "line 2 has no tab" in str(e.value) and "CSV" not in str(e.value)


SENTENCES = [("the cat sleeps", "le chat dort"), ("I see you", "je te vois"),
             ("good morning", "bonjour"), ("thank you", "merci")]


@pytest.mark.parametrize("first", ["source\ttarget", "Input\tOutput", "src\ttgt",
                                   "question\tanswer", "source_text\ttarget_text",
                                   "English\tFrench", "en\tfr", "EN\tFR", "eng\tfra",
                                   "en_US\tfr-FR"])
def test_a_header_line_of_column_names_is_dropped_with_a_note(tmp_path, first):
    f = write(tmp_path / "p.tsv", first + "\n" + "".join(f"{s}\t{t}\n" for s, t in SENTENCES))
    assert read_tsv(f) == SENTENCES
    notes = []
    assert P._read_tsv(f, "--tsv", None, notes) == SENTENCES
    assert len(notes) == 1 and "line 1" in notes[0] and "taken as a header" in notes[0]
    assert "--no-header" in notes[0]
    # --no-header keeps it as a pair, --header drops it whatever it holds
    assert read_tsv(f, header=False) == [tuple(first.split("\t"))] + SENTENCES
    assert read_tsv(f, header=True) == SENTENCES


@pytest.mark.parametrize("first", [("cat", "chat"), ("hello", "bonjour"), ("in", "dans"),
                                   ("car", "voiture"), ("English", "anglais")])
def test_a_real_first_pair_of_short_words_is_kept_without_a_note(tmp_path, first):
    rows = [first, ("dog", "chien"), ("house", "maison"), ("tree", "arbre")]
    f = write(tmp_path / "p.tsv", "".join(f"{s}\t{t}\n" for s, t in rows))
    notes = []
    assert P._read_tsv(f, "--tsv", None, notes) == rows and notes == []
    assert read_tsv(f, header=True) == rows[1:]  # the user's word decides


def test_two_language_codes_above_single_words_are_kept_with_a_note(tmp_path):
    """English "is", Spanish "es": two codes are a header above phrases only."""
    rows = [("is", "es"), ("dog", "perro"), ("house", "casa"), ("tree", "árbol")]
    f = write(tmp_path / "p.tsv", "".join(f"{s}\t{t}\n" for s, t in rows))
    notes = []
    assert P._read_tsv(f, "--tsv", None, notes) == rows
    assert len(notes) == 1 and "kept as a pair" in notes[0] and "--header" in notes[0]
    assert read_tsv(f, header=True) == rows[1:]


def test_a_header_like_line_that_recurs_as_a_pair_is_data(tmp_path):
    rows = [("input", "output"), ("hot", "cold"), ("output", "input"), ("up", "down")]
    f = write(tmp_path / "antonyms.tsv", "".join(f"{s}\t{t}\n" for s, t in rows))
    notes = []
    assert P._read_tsv(f, "--tsv", None, notes) == rows and notes == []


def test_load_pairs_applies_the_header_rule_to_every_file_and_keeps_the_notes(tmp_path):
    body = "".join(f"q{i}\ta{i}\n" for i in range(20))
    f = write(tmp_path / "data.tsv", "source\ttarget\n" + body)
    v = write(tmp_path / "v.tsv", "input\toutput\nq1\ta1\n")
    p = load_pairs(tsv=f, val_path=v, seed=1)
    assert ("source", "target") not in p.train + p.test and p.val == [("q1", "a1")]
    assert len(p.train) + len(p.test) == 20
    assert [n.split(":")[0] for n in p.notes] == [str(f), str(v)]
    kept = load_pairs(tsv=f, val_path=v, seed=1, header=False)
    assert ("source", "target") in kept.train + kept.test and kept.notes == []
    assert load_pairs(tsv=many(tmp_path, 20), seed=1).notes == []
    with pytest.raises(UserError, match="--no-header goes with --tsv"):
        load_pairs("addition", header=False)


def test_read_tsv_refuses_a_missing_path_and_a_directory(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_tsv(tmp_path / "missing.tsv")
    with pytest.raises(UserError, match="is a directory"):
        read_tsv(tmp_path)


# ---- load_pairs ---------------------------------------------------------------------------

def many(tmp_path: Path, n: int, name: str = "data.tsv") -> Path:
    return write(tmp_path / name, "".join(f"q{i}\ta{i}\n" for i in range(n)))


def test_tsv_is_shuffled_with_the_seed_and_cut_by_the_fractions(tmp_path):
    f = many(tmp_path, 100)
    p = load_pairs(tsv=f, seed=3)
    assert isinstance(p, Pairs) and (p.source, p.split) == (str(f), "fraction")
    assert (len(p.train), len(p.val), len(p.test)) == (80, 10, 10)
    assert sorted(p.train + p.val + p.test) == sorted(read_tsv(f))
    assert load_pairs(tsv=f, seed=3) == p
    other = load_pairs(tsv=f, seed=4)
    assert other.train != p.train and sorted(other.train + other.val + other.test) == sorted(
        p.train + p.val + p.test)
    q = load_pairs(tsv=f, val_fraction=0.25, test_fraction=0, seed=3)
    assert (len(q.train), len(q.val), len(q.test)) == (75, 25, 0)


def test_small_tsv_keeps_one_pair_per_part_and_too_small_is_an_error(tmp_path):
    p = load_pairs(tsv=many(tmp_path, 10))
    assert (len(p.train), len(p.val), len(p.test)) == (8, 1, 1)
    with pytest.raises(UserError, match="at least 10"):
        load_pairs(tsv=many(tmp_path, 9))
    big = many(tmp_path, 10, "big.tsv")
    p = load_pairs(tsv=big, val_fraction=0.49, test_fraction=0.49)
    assert len(p.train) >= 1 and len(p.train) + len(p.val) + len(p.test) == 10


def test_val_and_test_files(tmp_path):
    f, v, t = many(tmp_path, 20), many(tmp_path, 3, "v.tsv"), many(tmp_path, 4, "t.tsv")
    p = load_pairs(tsv=f, val_path=v, test_path=t)
    assert p.split == "files" and p.train == read_tsv(f)
    assert p.val == read_tsv(v) and p.test == read_tsv(t)
    only_val = load_pairs(tsv=f, val_path=v, seed=1)
    assert only_val.split == "files" and only_val.val == read_tsv(v)
    assert (len(only_val.train), len(only_val.test)) == (18, 2)
    with pytest.raises(UserError, match="--val"):
        load_pairs(tsv=f, val_path=tmp_path / "nope.tsv", test_path=t)


@pytest.mark.parametrize("fraction", [-0.1, 0.5, 0.9])
def test_fractions_outside_0_to_half_are_refused(tmp_path, fraction):
    with pytest.raises(UserError, match="below 0.5"):
        load_pairs(tsv=many(tmp_path, 50), val_fraction=fraction)
    with pytest.raises(UserError, match="--test-fraction"):
        load_pairs(tsv=many(tmp_path, 50), test_fraction=fraction)


def test_load_pairs_errors(tmp_path):
    with pytest.raises(UserError) as e:
        load_pairs()
    assert "--dataset addition|dates|numbers" in str(e.value) and "--tsv PATH" in str(e.value)
    with pytest.raises(UserError, match="not both"):
        load_pairs("addition", tsv=many(tmp_path, 20))
    with pytest.raises(UserError) as e:
        load_pairs("poems")
    assert all(name in str(e.value) for name in PAIR_DATASETS)
    with pytest.raises(UserError, match="--val/--test go with --tsv"):
        load_pairs("dates", val_path=many(tmp_path, 20))
    with pytest.raises(UserError, match="--reverse"):
        load_pairs("numbers", reverse=True)
    with pytest.raises(UserError, match="--reverse"):
        load_pairs(tsv=many(tmp_path, 20), reverse=True)
    with pytest.raises(UserError, match="from 1 to 9"):
        load_pairs("addition", digits=12)

