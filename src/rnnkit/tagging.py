"""Using a trained sequence tagger from Python: ``rnnkit.load(RUN_DIR).tag(texts)``.

The same operation as ``rnnkit predict`` on a tagger run: a run directory of ``rnnkit train
tagger`` in, a tag for every token of each text out. The tokens are what the run was trained
on: each character (``--dataset python-tokens``) or each whitespace-separated word
(``--conll``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .data.vocab import UNK_ID, Vocab
from .errors import UserError
from .models.tagger import SequenceTagger

BATCH = 64


class Tagger:
    """A trained sequence tagger with its vocabulary and tag names.

    Attributes: ``model`` (the ``SequenceTagger``, eval mode), ``vocab``, ``tags``,
    ``config`` (the run's settings), ``path`` (the checkpoint loaded).

    Usually made by ``rnnkit.load(RUN_DIR)``; here from a fresh (untrained) model:

    Example:
        >>> vocab = Vocab.build(["def f(x): return 1"], "char")
        >>> tags = ["name", "keyword", "operator"]
        >>> t = Tagger(SequenceTagger(len(vocab), 3, hidden=8), vocab, tags)
        >>> out = t.tag(["def g", ""])
        >>> [len(o) for o in out], all(tag in tags for tag in out[0])  # a tag per character
        ([5, 0], True)
        >>> t.tokens("a b")
        ['a', ' ', 'b']
    """

    def __init__(self, model: SequenceTagger, vocab: Vocab, tags: Sequence[str],
                 config: dict[str, Any] | None = None, path: Path | None = None):
        self.model, self.vocab, self.tags = model.eval(), vocab, list(tags)
        self.config, self.path = dict(config or {}), path
        if len(self.tags) != model.config["num_tags"]:
            raise UserError(f"{path or 'the model'} scores {model.config['num_tags']} tags but "
                            f"the run names {len(self.tags)}; the checkpoint is from another "
                            "run: restore the run's own or train again")

    def tokens(self, text: str) -> list[str]:
        """What gets a tag: each character, or each whitespace-separated word."""
        return self.vocab.split(text)

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str]) -> list[Tensor]:
        """p(tag | token, text) for each text: a (tokens, tags) tensor, the columns in
        ``tags``' order (an empty text: no rows)."""
        if isinstance(texts, str):
            texts = [texts]
        ids = [[self.vocab.index.get(t, UNK_ID) for t in self.tokens(text)] for text in texts]
        out = [torch.empty(0, len(self.tags)) for _ in ids]
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: len(ids[i]))
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            lengths = torch.tensor([len(ids[i]) for i in rows])
            x = torch.zeros(int(lengths.max()), len(rows), dtype=torch.long)
            for b, i in enumerate(rows):
                x[:len(ids[i]), b] = torch.tensor(ids[i])
            p = self.model(x, lengths).float().softmax(-1)
            for b, i in enumerate(rows):
                out[i] = p[:len(ids[i]), b]
        return out

    def tag(self, texts: Sequence[str]) -> list[list[str]]:
        """The most probable tag of every token of each text."""
        return [[self.tags[j] for j in p.argmax(-1).tolist()] for p in self.probabilities(texts)]

    def __repr__(self) -> str:
        c = self.model.config
        return (f"Tagger(cell={c['cell']!r}, hidden={c['hidden']}, tokens={self.vocab.kind!r}, "
                f"tags={self.tags!r})")


def load_tagger(run_dir: str | Path, which: str = "best") -> Tagger:
    """A tagger run directory's model, vocabulary and tags (see ``rnnkit.load``)."""
    from .train.checkpoint import load_run
    from .train.tagger import load_vocab

    run = load_run(run_dir, which)
    if not isinstance(run.model, SequenceTagger):
        raise UserError(f"{run_dir} holds a {type(run.model).__name__}, not a sequence tagger; "
                        "this needs a run of rnnkit train tagger")
    if not run.config.get("tags"):
        raise UserError(f"{run_dir}/config.json lacks the run's tags; restore it from a copy or "
                        "train again")
    vocab = load_vocab(Path(run_dir) / "checkpoints")
    if len(vocab) != run.model.config["vocab_size"]:
        raise UserError(f"{run.path} is not this run's model: it reads "
                        f"{run.model.config['vocab_size']} tokens but the run's vocabulary has "
                        f"{len(vocab)}; restore the run's own checkpoint or train again")
    return Tagger(run.model, vocab, run.config["tags"], run.config, run.path)

