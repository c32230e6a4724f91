"""Attention maps of an encoder-decoder run (deck 003's alignment pictures): for a few
sources, where the decoder looked while writing each output token.

The sources are the run's first validation pairs (or the texts given); each is decoded
greedily by the run's ``Translator``, and its attention matrix (a row per output token, a
column per source token) is drawn as a heatmap (``train.plots.plot_attention``) and kept as
numbers in ``RUN/analysis/attention.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..train.plots import plot_attention
from ..translation import load_translator
from .runs import analysis_dir, write_json

EXAMPLES = 4


def run_attention(run_dir: str | Path, which: str = "best", sources: list[str] | None = None,
                  n: int = EXAMPLES) -> dict[str, Any]:
    """Decode ``sources`` (default: the first ``n`` validation sources) and keep each one's
    attention; also ``analysis/attention.{json,png}``. A model without attention gives no
    examples.

    Example:
        >>> r = run_attention("runs/addition", sources=["12+345"])   # doctest: +SKIP
        >>> r["examples"][0]["output"], len(r["examples"][0]["weights"])  # doctest: +SKIP
        ('357', 4)
    """
    translator = load_translator(run_dir, which)
    if translator.model.config.get("attention", "none") == "none":
        result: dict[str, Any] = {"run": str(run_dir), "examples": []}
        write_json(run_dir, "attention.json", result)
        return result
    sources = sources if sources is not None else _validation_sources(translator.config, n)
    examples = [translator.translate(s) for s in sources]
    result = {"run": str(run_dir), "checkpoint": translator.path.stem if translator.path else
              which, "examples": [{"source": t.source, "output": t.text,
                                   "source_tokens": t.source_tokens,
                                   "output_tokens": t.output_tokens,
                                   "weights": t.attention.tolist()} for t in examples]}
    write_json(run_dir, "attention.json", result)
    plot_attention(analysis_dir(run_dir) / "attention.png",
                   [(t.source_tokens, t.output_tokens, t.attention) for t in examples])
    return result


def _validation_sources(c: dict[str, Any], n: int) -> list[str]:
    from ..data.pairs import load_pairs

    # reverse=False: the translator itself reverses what a --reverse run reads
    pairs = load_pairs(c.get("dataset"), c.get("tsv"), digits=c.get("digits", 3),
                       val_path=c.get("val"), test_path=c.get("test"),
                       val_fraction=c.get("val_fraction", 0.1),
                       test_fraction=c.get("test_fraction", 0.1), seed=c.get("seed", 0),
                       header=c.get("header"))
    return [source for source, _ in (pairs.val or pairs.test)[:n]]
