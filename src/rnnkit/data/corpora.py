"""Text corpora that need no download, the user's own text, and deterministic splits.

Built in (``--dataset NAME``):

* ``python-source``: the Python standard library's own ``.py`` files (real code, as Karpathy
  trained on the Linux source), found through ``sysconfig.get_paths()["stdlib"]``. Files are
  taken in sorted order of their path relative to that directory, and concatenated. Left out:
  ``site-packages`` / ``dist-packages`` (not the standard library), the test suites
  (directories ``test``, ``tests``, ``idle_test``: full of deliberately odd code and data),
  ``_sysconfigdata*`` and ``config-*/`` (machine-specific build settings), ``pydoc_data``
  (one huge string literal: it is the ``python-docs`` corpus), the character-map tables that
  ``gencodec.py`` generated (``encodings/cp1252.py`` and 60-odd more: 1.2 MB of hex numbers)
  and any file that is not UTF-8. The text depends on the Python version (about 10 MB for
  3.11); ``max_chars`` takes the leading files, so a few MB cost only reading those.
* ``python-docs``: the English text of Python's built-in help topics
  (``pydoc_data.topics.topics``, joined in sorted key order, about 0.45 M characters).
* ``hello``: ``"hello"`` repeated 200 times: deck 003's toy example, for an overfit test.

User text (``--text PATH``): a UTF-8 file, a directory (every text file under it,
recursively, in sorted order) or a glob pattern (``"src/**/*.py"``: ``**`` matches any depth;
matches are read as in a directory). Inside a directory (or below a pattern's fixed part) these
are skipped, so that pointing ``--text`` at a project does not train on its tooling:

* hidden files and directories (``.git``, ``.venv`` ...), silently;
* directories that hold no one's writing: ``__pycache__``, ``node_modules``,
  ``site-packages``, ``dist-packages``, and a virtual environment (a directory holding
  ``pyvenv.cfg``), unless the path or pattern names one (``--text venv/`` reads it all);
* files that are binary (a NUL byte), not UTF-8, or empty (whitespace only).

``load_corpus(..., report=print)`` says in one line what was read and what was skipped (counts
and a few names), e.g. ``--text proj: read 1,204 files (1.8 M characters: .py 1,100, .txt 80,
other 24); skipped 310: binary 300 (e.g. lib/x.so, ...); left out 1 directory: virtual
environment 1 (e.g. venv)``.

A language model's splits (``load_splits``): the ``--val`` / ``--test`` texts when given; else a
built-in corpus or one file is cut at its tail (``split_corpus``), and a directory or glob by
whole files, its last ones held out (the tail of the joined text when there are too few files,
or files too unequal, for that).
"""

from __future__ import annotations

import glob as globlib
import os
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

DATASETS: dict[str, str] = {
    "python-source": "the Python standard library's .py files (about 10 MB of code)",
    "python-docs": "the English text of Python's help topics (about 0.45 M characters)",
    "hello": "'hello' repeated: deck 003's toy example",
}
DEFAULT_DATASET = "python-source"

_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__",
              "pydoc_data"}
# directories inside the user's --text directory that are nobody's corpus (module docstring)
_NOT_CORPUS_DIRS = ("__pycache__", "node_modules", "site-packages", "dist-packages")
_VENV = "virtual environment"
_MAGIC = "*?["


def load_corpus(dataset: str | None = None, text: str | Path | None = None,
                max_chars: int | None = None,
                report: Callable[[str], None] | None = None, flag: str = "--text") -> str:
    """The text of a built-in ``dataset`` or of the user's ``text`` path (file, dir or glob).

    ``max_chars`` keeps at most that many leading characters, cut after a newline when one
    lies in the second half. Neither given: ``DEFAULT_DATASET``. ``report`` (e.g. a print to
    stderr) gets one line saying which files a directory or glob gave and which it skipped.
    ``flag`` names the option ``text`` came from in messages (``--val``, ``--test``).

    Example:
        >>> load_corpus("hello", max_chars=12)
        'hellohellohe'
        >>> len(load_corpus("python-docs")) > 400_000
        True
    """
    return "".join(part for _, part in _load_files(dataset, text, max_chars, report, flag))


def _load_files(dataset: str | None, text: str | Path | None, max_chars: int | None,
                report: Callable[[str], None] | None, flag: str) -> list[tuple[str, str]]:
    """``load_corpus``'s text as (name, text) per file read, in order; a built-in corpus or a
    single file is one part."""
    if max_chars is not None and max_chars < 1:
        raise UserError(f"max_chars must be a positive number of characters, got {max_chars}")
    if dataset is not None and text is not None:
        raise UserError("give either a built-in dataset (--dataset) or your own text (--text), "
                        "not both")
    if text is None:
        name = dataset or DEFAULT_DATASET
        corpus = _builtin(name, max_chars)
        return [(name, corpus if max_chars is None else _truncate(corpus, max_chars))]
    files, found = _read_user_text(text, max_chars, flag)
    files = _clip(files, max_chars)
    if report is not None and found is not None:
        report(found.summary(f"{flag} {text}", sum(len(t) for _, t in files), max_chars))
    return files


def _clip(files: list[tuple[str, str]], max_chars: int | None) -> list[tuple[str, str]]:
    """The files cut where ``_truncate`` cuts their joined text."""
    if max_chars is None:
        return files
    left = len(_truncate("".join(t for _, t in files), max_chars))
    kept = []
    for name, t in files:
        if left <= 0:
            break
        kept.append((name, t[:left]))
        left -= len(t)
    return kept


def split_corpus(text: str, val_fraction: float = 0.05,
                 test_fraction: float = 0.05) -> tuple[str, str, str]:
    """(train, val, test): contiguous slices, val and test at the tail, no randomness.

    Each boundary moves to just after the nearest newline within 2 % of the text (so
    splits begin at a line), else stays where the fractions put it.

    Example:
        >>> split_corpus("a\\nb\\nc\\nd\\ne\\nf\\ng\\nh\\ni\\nj\\n", 0.2, 0.2)
        ('a\\nb\\nc\\nd\\ne\\nf\\n', 'g\\nh\\n', 'i\\nj\\n')
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1, "
                         f"got {val_fraction} and {test_fraction}")
    n = len(text)
    n_test = _at_least_one(n * test_fraction)
    n_val = _at_least_one(n * val_fraction)
    if n - n_val - n_test < 2:
        raise UserError(f"the text has {n} characters, too few to split into train, validation "
                        "and test parts; give more text")
    slack = max(1, n // 50)
    b2 = _cut_near(text, n - n_test, slack, lo=2 + (n_val > 0), hi=n - 1) if n_test else n
    b1 = _cut_near(text, b2 - n_val, slack, lo=2, hi=b2 - 1) if n_val else b2
    return text[:b1], text[b1:b2], text[b2:]


def _at_least_one(x: float) -> int:
    return 0 if x == 0 else max(1, round(x))


def _cut_near(text: str, pos: int, slack: int, lo: int, hi: int) -> int:
    """The index just after the newline nearest ``pos`` (within ``slack``), kept in [lo, hi]."""
    pos = min(max(pos, lo), hi)
    left = text.rfind("\n", max(lo - 1, pos - slack - 1), pos)  # cut = left + 1 <= pos
    right = text.find("\n", pos, min(hi, pos + slack))  # cut = right + 1 <= hi
    cands = [c + 1 for c in (left, right) if c >= 0 and lo <= c + 1 <= hi]
    return min(cands, key=lambda c: abs(c - pos)) if cands else pos


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    cut = head.rfind("\n")
    return head[: cut + 1] if cut >= max_chars // 2 else head


# ---- a language model's train / validation / test text ---------------------------------

@dataclass
class TextSplits:
    """The three texts of a language-model run and how they were made (``summary.json``'s
    ``split``): ``"tail"`` (cut at the end of one text, or of a built-in corpus), ``"by-file"``
    (the last whole files of a directory or glob) or ``"files"`` (``--val`` / ``--test``)."""

    train: str
    val: str
    test: str
    kind: str

    def chars(self) -> dict[str, int]:
        return {f"{k}_chars": len(getattr(self, k)) for k in ("train", "val", "test")}


def load_splits(dataset: str | None = None, text: str | Path | None = None,
                max_chars: int | None = None, *, val: str | Path | None = None,
                test: str | Path | None = None, val_fraction: float = 0.05,
                test_fraction: float = 0.05,
                report: Callable[[str], None] | None = None) -> TextSplits:
    """The train, validation and test text of ``load_corpus(dataset, text, max_chars)``.

    ``val`` / ``test``: held-out paths, read as ``text`` is (in full: ``max_chars`` is the
    training text's); the part not given is cut from ``text`` by its fraction. A built-in
    corpus or one file is cut at its tail (``split_corpus``); a directory or glob by whole
    files, its last ones (in the sorted order) going to validation and test until each has its
    fraction of the characters, one file at least. With too few files for that, or files so
    unequal that training would keep under half of what the fractions leave it, the joined
    text is cut at its tail, and ``report`` is told.

    Example:
        >>> s = load_splits("hello", max_chars=200, val_fraction=0.1, test_fraction=0.1)
        >>> len(s.train), len(s.val), len(s.test), s.kind
        (160, 20, 20, 'tail')
    """
    vf = 0.0 if val is not None else val_fraction
    tf = 0.0 if test is not None else test_fraction
    _check_fractions(vf, tf)
    if text is None and (val is not None or test is not None):
        raise UserError(f"--val and --test go with --text; the built-in corpus "
                        f"{dataset or DEFAULT_DATASET} keeps its own split (the tail of its text, "
                        "--val-fraction and --test-fraction): drop them, or give your text as "
                        "--text PATH")
    files = _load_files(dataset, text, max_chars, report, "--text")
    held = {k: load_corpus(text=path, report=report, flag=f"--{k}")
            for k, path in (("val", val), ("test", test)) if path is not None}
    several = text is not None and not Path(os.path.expanduser(str(text))).is_file()
    train, cut_val, cut_test, kind = _cut(files, vf, tf, f"--text {text}" if several else None,
                                          report)
    return TextSplits(train, held.get("val", cut_val), held.get("test", cut_test),
                      "files" if held else kind)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= f < 1:
            raise UserError(f"{name} must be at least 0 and below 1, got {f}; e.g. 0.05")
    if val_fraction + test_fraction >= 1:
        raise UserError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction} "
                        "leave no training text; keep their sum below 1, e.g. 0.05 each")


def _cut(files: list[tuple[str, str]], vf: float, tf: float, what: str | None,
         report: Callable[[str], None] | None) -> tuple[str, str, str, str]:
    """(train, val, test, kind): a directory or glob (``what`` names it) by whole files where
    there are enough of them, else the tail."""
    if what is not None and (vf or tf):
        counts, why = _file_counts([len(t) for _, t in files], vf, tf)
        if counts is not None:
            return (*_by_file(files, *counts, what, report), "by-file")
        if report is not None:
            report(f"{what}: {why}: validation and test are cut from the tail of the joined "
                   "text instead")
    return (*split_corpus("".join(t for _, t in files), vf, tf), "tail")


def _file_counts(sizes: list[int], vf: float, tf: float
                 ) -> tuple[tuple[int, int] | None, str]:
    """How many of the last files go to (validation, test), or None and why not."""
    n, total = len(sizes), sum(sizes)
    parts = (vf > 0) + (tf > 0)
    if n < parts + 1:
        return None, f"too few files to split by whole files ({n}; {parts + 1} needed)"
    n_test = _files_at_end(sizes, tf * total, most=n - parts)
    n_val = _files_at_end(sizes[:n - n_test], vf * total, most=n - n_test - 1)
    kept = sum(sizes[:n - n_val - n_test])
    if kept < total * (1 - vf - tf) / 2:
        return None, (f"whole files would leave training {kept:,} of its {total:,} characters "
                      "(the last files are large)")
    return (n_val, n_test), ""


def _files_at_end(sizes: list[int], goal: float, most: int) -> int:
    """How many of the last ``sizes`` reach ``goal`` characters: at least one, at most
    ``most``; none for no goal."""
    k = got = 0
    while goal > 0 and k < most and got < goal:
        k += 1
        got += sizes[-k]
    return k


def _by_file(files: list[tuple[str, str]], n_val: int, n_test: int, what: str,
             report: Callable[[str], None] | None) -> tuple[str, str, str]:
    val_at, test_at = len(files) - n_val - n_test, len(files) - n_test
    groups = {"training": files[:val_at], "validation": files[val_at:test_at],
              "test": files[test_at:]}
    if report is not None:
        shown = [_group_line(label, g) for label, g in groups.items() if g]
        report(f"{what}: split by whole files: {', '.join(shown)} (--val and --test choose "
               "your own)")
    train, val, test = ("".join(t for _, t in g) for g in groups.values())
    return train, val, test


def _group_line(label: str, files: list[tuple[str, str]]) -> str:
    """``validation 2 files (5,120 characters: a.txt, b.txt)``; training's names left out."""
    n, chars = len(files), sum(len(t) for _, t in files)
    names = "" if label == "training" else ": " + _some([name for name, _ in files])
    return f"{label} {n:,} file{'' if n == 1 else 's'} ({chars:,} characters{names})"


def _some(names: list[str]) -> str:
    """The first three names, and ``...`` for more."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


# ---- built-in corpora ---------------------------------------------------------------------

def _builtin(name: str, max_chars: int | None) -> str:
    if name == "python-source":
        return _python_source(max_chars)
    if name == "python-docs":
        from pydoc_data.topics import topics

        return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"
    if name == "hello":
        return "hello" * 200
    raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                    "or give your own file with --text PATH")


def python_source_files() -> list[Path]:
    """The standard-library files ``python-source`` reads, in its order (before it skips the
    generated and non-UTF-8 ones)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if d not in _SKIP_DIRS and not d.startswith((".", "config-"))]
        found += [Path(dirpath, f) for f in filenames
                  if f.endswith(".py") and not f.startswith("_sysconfigdata")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _python_source(max_chars: int | None) -> str:
    def texts() -> Iterator[str]:
        for path in python_source_files():
            try:
                part = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # a stray non-UTF-8 file: skipped, as the docstring says
            if "gencodec.py" not in part[:1000]:  # a generated table, not code anyone wrote
                yield part

    parts = _take_lines(texts(), max_chars)
    if not parts:
        raise UserError(f"found no standard-library source under "
                        f"{sysconfig.get_paths()['stdlib']}; use --dataset python-docs or --text")
    return "".join(parts)


def _take_lines(texts: Iterable[str], max_chars: int | None) -> list[str]:
    """The texts, each ending in a newline, until ``max_chars`` characters are reached (the
    file that crosses the limit is kept whole: never a cut line)."""
    parts, total = [], 0
    for part in texts:
        part = part if part.endswith("\n") else part + "\n"
        parts.append(part)
        total += len(part)
        if max_chars is not None and total >= max_chars:
            break
    return parts


# ---- the user's text ----------------------------------------------------------------------

@dataclass
class _Found:
    """What reading a directory or glob found: the report's and the error's facts."""

    root: Path  # names are shown relative to it
    read: list[Path] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(
        default_factory=lambda: {"binary": [], "not UTF-8": [], "empty": []})
    left_out: dict[str, list[Path]] = field(default_factory=dict)  # directories, by why
    unread: int = 0  # files not opened: max_chars was reached before them

    def name(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _counts(self, groups: dict[str, list[Path]]) -> str:
        return ", ".join(f"{why} {len(ps):,} (e.g. {_some([self.name(p) for p in ps])})"
                         for why, ps in groups.items() if ps)

    def problems(self) -> str:
        """``skipped 3: binary 2 (e.g. a.so, b.so), ...; left out 1 directory: ...``"""
        out = []
        n = sum(len(ps) for ps in self.skipped.values())
        if n:
            out.append(f"skipped {n:,}: {self._counts(self.skipped)}")
        n = sum(len(ps) for ps in self.left_out.values())
        if n:
            out.append(f"left out {n:,} director{'y' if n == 1 else 'ies'}: "
                       f"{self._counts(self.left_out)}")
        return "; ".join(out)

    def summary(self, what: str, chars: int, max_chars: int | None) -> str:
        kinds = Counter(p.suffix.lower() or "no suffix" for p in self.read).most_common()
        mix = ", ".join(f"{k} {n:,}" for k, n in kinds[:3])
        if len(kinds) > 3:
            mix += f", other {sum(n for _, n in kinds[3:]):,}"
        size = f"{chars / 1e6:.1f} M" if chars >= 1_000_000 else f"{chars:,}"
        n = len(self.read)
        line = (f"{what}: read {n:,} file{'' if n == 1 else 's'} ({size} "
                f"character{'' if chars == 1 else 's'}: {mix})")
        if self.problems():
            line += "; " + self.problems()
        if self.unread:
            line += f"; {self.unread:,} more not read (max_chars {max_chars:,} reached)"
        return line


def _read_user_text(spec: str | Path, max_chars: int | None,
                    flag: str) -> tuple[list[tuple[str, str]], _Found | None]:
    path = Path(os.path.expanduser(str(spec)))
    if path.is_file():
        return [(str(path), _decode(path, path.read_bytes()))], None
    if path.is_dir():
        found = _Found(path)
        files = _walk(path, found, prune=not _asked_for(path))
        where = f"directory {path}"
    elif any(ch in str(spec) for ch in _MAGIC):
        pattern = os.path.expanduser(str(spec))
        matches = sorted(globlib.glob(pattern, recursive=True))
        if not matches:
            raise UserError(f"the pattern {spec} matches no files; check it (and quote it so "
                            "the shell does not expand it)")
        found = _Found(_fixed_part(pattern))
        # a pattern that names such a directory, or lies inside one, asks for all it matches
        named = any(part in _NOT_CORPUS_DIRS for part in Path(pattern).parts)
        prune = not (named or _asked_for(found.root))
        files = []
        for m in map(Path, matches):
            if prune and _left_out_below(m, found):
                continue
            files += _walk(m, found, prune) if m.is_dir() else [m]
        where = f"pattern {spec}"
    else:
        raise UserError(f"no such file or directory: {path}; check the path given to {flag}")
    return _join_text_files(files, found, where, max_chars, flag), found


def _fixed_part(pattern: str) -> Path:
    """The leading directories of a glob pattern that hold no wildcard."""
    parts = []
    for part in Path(pattern).parts:
        if any(ch in part for ch in _MAGIC):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def _asked_for(root: Path) -> bool:
    """Whether ``root`` is (inside) a directory that is nobody's corpus: the user named it."""
    root = root.resolve()
    if any(part in _NOT_CORPUS_DIRS for part in root.parts):
        return True
    return any((d / "pyvenv.cfg").is_file() for d in (root, *root.parents))


def _not_corpus(path: Path) -> str | None:
    """Why directory ``path`` holds nobody's writing (a cache, packages, a venv), or None."""
    if path.name in _NOT_CORPUS_DIRS:
        return path.name
    if (path / "pyvenv.cfg").is_file():
        return _VENV
    return None


def _left_out_below(path: Path, found: _Found) -> bool:
    """Whether a glob match lies in (or is) a directory that is nobody's corpus, below the
    pattern's fixed part; such a directory is recorded once in ``found.left_out``."""
    try:
        rel = path.relative_to(found.root)
    except ValueError:
        return False
    dirs = rel.parts if path.is_dir() else rel.parts[:-1]
    for i in range(1, len(dirs) + 1):
        d = found.root.joinpath(*dirs[:i])
        why = _not_corpus(d)
        if why:
            seen = found.left_out.setdefault(why, [])
            if d not in seen:
                seen.append(d)
            return True
    return False


def _walk(root: Path, found: _Found, prune: bool) -> list[Path]:
    """Every non-hidden file under ``root``, sorted by path; with ``prune``, not entering the
    directories that are nobody's corpus (recorded in ``found.left_out``)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        kept = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            why = _not_corpus(Path(dirpath, d)) if prune else None
            if why:
                found.left_out.setdefault(why, []).append(Path(dirpath, d))
            else:
                kept.append(d)
        dirnames[:] = kept
        files += [Path(dirpath, f) for f in filenames if not f.startswith(".")]
    return sorted(files)


def _join_text_files(files: list[Path], found: _Found, where: str, max_chars: int | None,
                     flag: str) -> list[tuple[str, str]]:
    """(name, text) of each text file, in order, until ``max_chars`` is reached."""
    ordered = list(_files_in_order(files))

    def texts() -> Iterator[str]:
        for path in ordered:
            try:
                text = _decode(path, path.read_bytes())
            except _NotText as e:
                found.skipped[e.reason].append(path)
                continue
            found.read.append(path)
            yield text

    parts = _take_lines(texts(), max_chars)
    found.unread = len(ordered) - len(found.read) - sum(map(len, found.skipped.values()))
    if not parts:
        raise UserError(f"the {where} holds no UTF-8 text files ({found.problems() or 'no files'}"
                        f"); point {flag} at text files")
    return list(zip((found.name(p) for p in found.read), parts))


def _files_in_order(files: list[Path]) -> Iterator[Path]:
    seen = set()
    for f in files:
        if f.is_file() and f not in seen:
            seen.add(f)
            yield f


class _NotText(UserError):
    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text of a file (a leading BOM dropped), or a _NotText error saying why not."""
    if not data:
        raise _NotText(f"{path} is empty; give a file with some text in it", "empty")
    nul = data.find(b"\0")
    if nul >= 0:
        raise _NotText(f"{path} looks binary (a NUL byte at offset {nul}); give a UTF-8 text "
                       "file", "binary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _NotText(f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                       f"{e.start}); convert it, e.g. iconv -f latin1 -t utf-8", "not UTF-8") from e
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _NotText(f"{path} holds only whitespace; give a file with some text in it",
                       "empty")
    return text
