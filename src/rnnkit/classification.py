"""Using a trained sequence classifier from Python: ``rnnkit.load(RUN_DIR).predict(texts)``.

The same operation as ``rnnkit predict``: a classifier run directory (``rnnkit train
classifier --out DIR``) in, a label and its probability per text out. A run on scores
(``--dataset music-genre``) has no tokenizer: its inputs are score files (any format music21
reads) or piano rolls (T, 88), read as training read them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import UserError
from .models.classifier import SequenceClassifier

BATCH = 256


class Predictor:
    """A trained sequence classifier with its tokenizer and class names.

    Attributes: ``model`` (the ``SequenceClassifier``, eval mode), ``tokenizer``, ``classes``,
    ``config`` (the run's settings), ``path`` (the checkpoint loaded).

    Usually made by ``rnnkit.load(RUN_DIR)``; here from a fresh (untrained) model:

    Example:
        >>> from rnnkit.data.tokenizers import build_tokenizer
        >>> tok = build_tokenizer("char", "good bad")
        >>> p = Predictor(SequenceClassifier(tok.vocab_size, 2, hidden=8), tok, ["neg", "pos"])
        >>> [label in ("neg", "pos") and 0.5 <= prob <= 1 for label, prob in
        ...  p.predict(["good", "so bad"])]
        [True, True]
        >>> round(p.probabilities(["good"]).sum().item(), 4)           # a row per text
        1.0
        >>> p.predict([""])                                             # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rnnkit.errors.UserError: text 1 is empty: ...

    A model of feature sequences (``tokenizer`` None) reads piano rolls or score files:

        >>> m = SequenceClassifier(None, 3, input_features=88, hidden=8)
        >>> p = Predictor(m, None, ["baroque", "folk", "renaissance"], {"input": "piano-roll"})
        >>> p.probabilities([torch.zeros(16, 88), torch.ones(5, 88)]).shape
        torch.Size([2, 3])
    """

    def __init__(self, model: SequenceClassifier, tokenizer: Any, classes: Sequence[str],
                 config: dict[str, Any] | None = None, path: Path | None = None):
        self.model, self.tokenizer, self.classes = model.eval(), tokenizer, list(classes)
        self.config, self.path = dict(config or {}), path
        if len(self.classes) != model.config["num_classes"]:
            raise UserError(f"{path or 'the model'} scores {model.config['num_classes']} "
                            f"classes but the run names {len(self.classes)}; the checkpoint is "
                            "from another run: restore the run's own or train again")
        self.max_length = self.config.get("max_length") or None

    def features(self, item: str | os.PathLike | Tensor, number: int = 1) -> Tensor:
        """The (T, F) features a feature model reads: a piano roll as given (its first
        ``max_length`` rows), or a score file's piano roll, as in training."""
        from .data import music

        F = self.model.config["input_features"]
        if isinstance(item, Tensor):
            x = item.float()
            if x.dim() != 2 or x.shape[1] != F or not len(x):
                raise UserError(f"input {number} is a tensor of shape {tuple(x.shape)}; give a "
                                f"piano roll of shape (steps, {F}) with at least one step")
        else:
            roll = self.config.get("roll") or {}
            x = music.piano_roll(music.read_score(item), step=roll.get("step", music.STEP),
                                 max_steps=None, low=roll.get("low", music.LOW),
                                 high=roll.get("high", music.HIGH))
        return x[:self.max_length]

    def encode(self, text: str, number: int = 1) -> list[int]:
        """The token ids the model reads for ``text`` (the first ``max_length``); an empty
        text is a ``UserError`` (``number`` names it)."""
        ids = self.tokenizer.encode(text.strip())[:self.max_length]
        if not ids:
            raise UserError(f"text {number} is empty: there is nothing to classify")
        return ids

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str]) -> Tensor:
        """p(class | text): (N, C), a row per text, the columns in ``classes``' order."""
        from .train.classifier import pad

        if isinstance(texts, (str, os.PathLike, Tensor)):
            texts = [texts]
        ids = [self.features(t, i) if self.tokenizer is None else self.encode(t, i)
               for i, t in enumerate(texts, 1)]
        out = torch.empty(len(ids), len(self.classes))
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # little padding
        for start in range(0, len(ids), BATCH):
            rows = order[start:start + BATCH]
            batch = [ids[i] for i in rows]
            lengths = torch.tensor([len(s) for s in batch])
            out[rows] = self.model(pad(batch), lengths).float().softmax(-1)
        return out

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The most probable label of each text (or score file, or piano roll) with its
        probability."""
        p, best = self.probabilities(texts).max(-1)
        return [(self.classes[i], v) for i, v in zip(best.tolist(), p.tolist())]

    def __repr__(self) -> str:
        c = self.model.config
        return (f"Predictor(cell={c['cell']!r}, hidden={c['hidden']}, "
                f"readout={c['readout']!r}, classes={self.classes!r})")


def load_predictor(run_dir: str | Path, which: str = "best") -> Predictor:
    """A classifier run directory's model, tokenizer and classes (see ``rnnkit.load``)."""
    from .train.checkpoint import load_task_run

    run = load_task_run(run_dir, which, SequenceClassifier, "a sequence classifier",
                        "classifier")
    features = run.model.config.get("vocab_size") is None  # piano rolls: no tokenizer
    if (run.tokenizer is None and not features) or not run.config.get("classes"):
        raise UserError(f"{run_dir} lacks its tokenizer (checkpoints/tokenizer.json) or its "
                        "classes (config.json); restore them from a copy or train again")
    return Predictor(run.model, run.tokenizer, run.config["classes"], run.config, run.path)
