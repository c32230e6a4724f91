"""Pretrained word vectors (deck 003's embeddings) for a model's embedding layer.

The file is word2vec's text format: an optional header line ``COUNT DIM``, then one word a
line followed by its DIM numbers, separated by spaces (GloVe's files are the same without the
header). ``write_word2vec`` writes it with each float32 in its shortest form that reads back
as the same float32, so a round trip is exact. A word tokenizer's token keeps the space before
it (``" cat"``): it takes the vector of its word, or of its lowercase form; tokens without one
keep their random start.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError


def read_word2vec(path: str | Path, keep: set[str] | None = None, flag: str = "--embeddings"
                  ) -> tuple[list[str], Tensor]:
    """The words and their vectors (N, D) of a word2vec text file (only the words in ``keep``,
    when given: a large file need not fit in memory).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "v.txt"
        >>> _ = f.write_text("2 3\\ncat 1 0 0\\ndog 0 1 0.5\\n")
        >>> words, vectors = read_word2vec(f)
        >>> words, vectors.shape
        (['cat', 'dog'], torch.Size([2, 3]))
    """
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise UserError(f"no such file: {path}; give {flag} a word2vec text file (a word and "
                        "its numbers a line)")
    words, rows, dim, number = [], [], None, 0
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for number, line in enumerate(f, 1):
                parts = line.rstrip("\n").rstrip().split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec's header: count, dimension
                if not parts[0]:
                    continue
                try:
                    values = [float(v) for v in parts[1:]]
                except ValueError:
                    raise UserError(f"{path}: line {number} is not a word followed by numbers; "
                                    f"give {flag} a word2vec text file") from None
                dim = dim or len(values)
                if len(values) != dim or not dim:
                    raise UserError(f"{path}: line {number} has {len(values)} numbers, the "
                                    f"lines before it {dim}; every vector needs the same size")
                if keep is None or parts[0] in keep or parts[0].lower() in keep:
                    words.append(parts[0])
                    rows.append(values)
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a UTF-8 text file (line {number + 1}); give {flag} "
                            "word2vec's text format, not its binary one") from None
    if dim is None:
        raise UserError(f"{path} holds no vectors; give {flag} a word2vec text file")
    return words, torch.tensor(rows).view(len(rows), dim)


def write_word2vec(path: str | Path, words: list[str], vectors: Tensor) -> Path:
    """Write ``words`` and ``vectors`` (N, D) in word2vec's text format (header ``N D``),
    atomically; ``read_word2vec`` gives back the same words and float32 numbers.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "v.txt"
        >>> _ = write_word2vec(f, ["cat", "dog"], torch.tensor([[0.1, -2.0], [1e-8, 3.25]]))
        >>> print(f.read_text(), end="")
        2 2
        cat 0.1 -2.0
        dog 1e-08 3.25
        >>> torch.equal(read_word2vec(f)[1], torch.tensor([[0.1, -2.0], [1e-8, 3.25]]))
        True
    """
    import numpy as np

    from ..train.checkpoint import atomic_write_bytes

    bad = [w for w in words if not w or any(c.isspace() for c in w)]
    if bad:
        raise UserError(f"cannot write the word {bad[0]!r}: word2vec's text format separates "
                        "words by spaces, so a word may not be empty or hold one")
    values = vectors.detach().to("cpu", torch.float32).numpy()
    lines = [f"{len(words)} {values.shape[1]}"]
    for word, row in zip(words, values):  # str(np.float32): the shortest exact form
        lines.append(word + " " + " ".join(map(str, row.astype(np.float32))))
    path = Path(os.path.expanduser(str(path)))
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def pretrained_embedding(tokens: list[str], words: list[str], vectors: Tensor,
                         start: Tensor) -> tuple[Tensor, float]:
    """``start`` (V, D) with each token's row replaced by its word's vector where the file has
    one (the word as written, else the first the same but for case); and the share of tokens
    found.

    Example:
        >>> m, found = pretrained_embedding(["<unk>", " Cat", "!"], ["cat"],
        ...                                 torch.ones(1, 2), torch.zeros(3, 2))
        >>> m.tolist(), found
        ([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], 0.3333333333333333)
    """
    index, folded = {w: i for i, w in enumerate(words)}, {}
    for i, w in enumerate(words):
        folded.setdefault(w.lower(), i)
    out, found = start.clone(), 0
    for t, token in enumerate(tokens):
        word = token.strip()
        i = index.get(word, folded.get(word.lower()))
        if i is not None:
            out[t] = vectors[i]
            found += 1
    return out, found / len(tokens)
