"""The standard word-vector test sets that gensim ships in its test data (no download).

* ``wordsim353``: 353 word pairs with a human relatedness score (Finkelstein et al. 2002);
* ``simlex999``: 999 pairs scored for similarity proper, not relatedness (Hill et al. 2015);
* ``questions-words.txt``: Mikolov's 19,544 analogy questions "a b c d" (a is to b as c is to
  d), in 14 sections (capitals, plurals, tenses ...).

Example:
    >>> pairs = word_pairs("wordsim353")
    >>> len(pairs), pairs[0]
    (353, ('love', 'sex', 6.77))
    >>> len(analogy_questions())
    19544
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from ..errors import UserError

PAIR_SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGIES = "questions-words.txt"


def gensim_data(name: str) -> Path:
    """A file of gensim's test data, found without importing gensim (seconds of imports)."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{name} comes with gensim's test data; install gensim "
                        "(pip install gensim)")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    if not path.is_file():
        raise UserError(f"gensim's test data has no {name} ({path}); reinstall gensim")
    return path


_path = gensim_data


@cache
def word_pairs(name: str) -> list[tuple[str, str, float]]:
    """(word, word, human score) of a pair set (lines ``a<TAB>b<TAB>score``, ``#`` comments)."""
    if name not in PAIR_SETS:
        raise UserError(f"unknown word-pair set {name!r}; choose from {', '.join(PAIR_SETS)}")
    out = []
    for line in _path(PAIR_SETS[name]).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            a, b, score = line.split("\t")[:3]
            out.append((a, b, float(score)))
    return out


@lru_cache(maxsize=1)
def analogy_questions() -> list[tuple[str, str, str, str, str]]:
    """(section, a, b, c, d) of each analogy question, in the file's order."""
    out, section = [], ""
    for line in _path(ANALOGIES).read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            a, b, c, d = line.split()
            out.append((section, a, b, c, d))
    return out
