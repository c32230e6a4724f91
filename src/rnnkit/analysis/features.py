"""What a reader tracks in a text, one number per character (deck 003, Karpathy's cells):
the position in the line, whether we are inside a string, a comment, either of them (deck
003's "cell that turns on inside comments and quotes") or (prose) quotes, the bracket depth and
the indentation of the line (code).

Each feature at character i is the state AFTER reading it, which is what a model's h_i has
seen: the opening quote of a string is inside it, the closing one is out again. Code is read by
a small scanner rather than Python's ``tokenize``: a validation split starts and ends mid-file
and need not be valid Python, and the scanner never fails.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("position_in_line", "inside_string", "inside_comment", "comment_or_string",
            "bracket_depth", "indentation", "inside_quotes")
OPEN, CLOSE = "([{", ")]}"
PROSE_QUOTES = {'"': '"', "\u201c": "\u201d"}  # "..." and curly double quotes


def text_features(text: str) -> dict[str, np.ndarray]:
    """Every feature of ``FEATURES`` for every character of ``text`` (float arrays).

    Example:
        >>> f = text_features('x = "a#"  # c\\n  (y)')
        >>> "".join("s" if v else "." for v in f["inside_string"])
        '....sss............'
        >>> "".join("c" if v else "." for v in f["inside_comment"])
        '..........ccc......'
        >>> "".join("x" if v else "." for v in f["comment_or_string"])
        '....xxx...xxx......'
        >>> [f[name][-3:].tolist() for name in ("bracket_depth", "indentation")]
        [[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]]
        >>> f["position_in_line"][-3:].tolist()
        [3.0, 4.0, 5.0]
    """
    out = {"position_in_line": _position_in_line(text), **_code_state(text),
           "indentation": _indentation(text), "inside_quotes": _inside_quotes(text)}
    return {name: out[name] for name in FEATURES}


def _position_in_line(text: str) -> np.ndarray:
    """Characters read since the line began (a newline itself: 0)."""
    pos, col = [0.0] * len(text), 0
    for i, ch in enumerate(text):
        col = 0 if ch == "\n" else col + 1
        pos[i] = col
    return np.array(pos, dtype=float)


def _indentation(text: str) -> np.ndarray:
    """The leading spaces of the current line (a tab counts 4), for all of its characters."""
    out = np.zeros(len(text))
    start = 0
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        width = sum(4 if c == "\t" else 1 for c in line[:len(line) - len(body)])
        out[start:start + len(line) + 1] = width
        start += len(line) + 1
    return out[:len(text)]


def _code_state(text: str) -> dict[str, np.ndarray]:
    """Strings (', ", and their triple forms, with backslash escapes), comments (# to the end
    of the line, outside strings) and bracket depth (outside both)."""
    n = len(text)
    string, comment, depth = np.zeros(n), np.zeros(n), np.zeros(n)
    quote: str | None = None  # the delimiter of the string we are in
    in_comment, escaped, level, i = False, False, 0, 0
    while i < n:
        ch, span = text[i], 1
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif text.startswith(quote, i):
                span, quote = len(quote), None
            elif ch == "\n" and len(quote) == 1:
                quote = None  # an unterminated one-line string ends with its line
        elif in_comment:
            in_comment = ch != "\n"
        elif ch == "#":
            in_comment = True
        elif ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            span = len(quote)
        elif ch in OPEN:
            level += 1
        elif ch in CLOSE:
            level = max(0, level - 1)
        string[i:i + span] = 1.0 if quote is not None else 0.0
        comment[i:i + span] = 1.0 if in_comment else 0.0
        depth[i:i + span] = level
        i += span
    return {"inside_string": string, "inside_comment": comment,
            "comment_or_string": np.maximum(string, comment), "bracket_depth": depth}


def _inside_quotes(text: str) -> np.ndarray:
    """Prose: between double quotes ("..." or curly), which may span lines."""
    out, closing = np.zeros(len(text)), None
    for i, ch in enumerate(text):
        if closing is not None and ch == closing:
            closing = None
        elif closing is None and ch in PROSE_QUOTES:
            closing = PROSE_QUOTES[ch]
        out[i] = closing is not None
    return out
