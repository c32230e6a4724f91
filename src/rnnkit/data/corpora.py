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
recursively, in sorted order; hidden entries, binary and non-UTF-8 files are skipped) or a
glob pattern (``"notes/**/*.md"``; matches are read as in a directory).
"""

from __future__ import annotations

import glob as globlib
import os
import sysconfig
from collections.abc import Iterable, Iterator
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


def load_corpus(dataset: str | None = None, text: str | Path | None = None,
                max_chars: int | None = None) -> str:
    """The text of a built-in ``dataset`` or of the user's ``text`` path (file, dir or glob).

    ``max_chars`` keeps at most that many leading characters, cut after a newline when one
    lies in the second half. Neither given: ``DEFAULT_DATASET``.

    Example:
        >>> load_corpus("hello", max_chars=12)
        'hellohellohe'
        >>> len(load_corpus("python-docs")) > 400_000
        True
    """
    if max_chars is not None and max_chars < 1:
        raise UserError(f"max_chars must be a positive number of characters, got {max_chars}")
    if dataset is not None and text is not None:
        raise UserError("give either a built-in dataset (--dataset) or your own text (--text), "
                        "not both")
    if text is not None:
        corpus = _read_user_text(text, max_chars)
    else:
        corpus = _builtin(dataset or DEFAULT_DATASET, max_chars)
    return corpus if max_chars is None else _truncate(corpus, max_chars)


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

def _read_user_text(spec: str | Path, max_chars: int | None) -> str:
    path = Path(os.path.expanduser(str(spec)))
    if path.is_file():
        return _decode(path, path.read_bytes())
    if path.is_dir():
        files = _walk(path)
        where = f"directory {path}"
    elif any(ch in str(spec) for ch in "*?["):
        matches = sorted(globlib.glob(os.path.expanduser(str(spec)), recursive=True))
        if not matches:
            raise UserError(f"the pattern {spec} matches no files; check it (and quote it so "
                            "the shell does not expand it)")
        files = [f for m in map(Path, matches) for f in (_walk(m) if m.is_dir() else [m])]
        where = f"pattern {spec}"
    else:
        raise UserError(f"no such file or directory: {path}; check the path given to --text")
    return _join_text_files(files, where, max_chars)


def _walk(root: Path) -> list[Path]:
    """Every non-hidden file under ``root``, sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".")]
    return sorted(found)


def _join_text_files(files: list[Path], where: str, max_chars: int | None) -> str:
    skipped = {"binary": 0, "not UTF-8": 0, "empty": 0}

    def texts() -> Iterator[str]:
        for path in _files_in_order(files):
            try:
                yield _decode(path, path.read_bytes())
            except _NotText as e:
                skipped[e.reason] += 1

    parts = _take_lines(texts(), max_chars)
    if not parts:
        why = ", ".join(f"{k} {v}" for k, v in skipped.items() if v) or "no files"
        raise UserError(f"the {where} holds no UTF-8 text files ({why}); point --text at "
                        "text files")
    return "".join(parts)


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
