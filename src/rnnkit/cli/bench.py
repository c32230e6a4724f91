"""`rnnkit bench NAME`: benchmarks live in the package (``rnnkit.bench.NAME``), so the
installed command finds them."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("core", "lm", "texts", "seq2seq", "pairs", "memory", "gpu", "classifier", "word2vec",
              "forecast")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help=f"run a benchmark ({', '.join(BENCHMARKS)}): a "
                       "side-by-side table",
                       description="Run a benchmark: it prints a side-by-side table and writes "
                       "JSON.\n\nexample:\n  rnnkit bench core --quick",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="which benchmark: core (engine speed and memory), lm (the "
                   "language model against a plain PyTorch script), texts (the defaults on your "
                   "texts against the 5-gram), seq2seq (the encoder-decoder's training step "
                   "against a plain PyTorch script), pairs (the seq2seq defaults on TSV pairs), "
                   "memory (which cell learns the adding and copy tasks at which length), gpu (the "
                   "engines and the parallel scan on a CUDA GPU), classifier (the sentiment "
                   "classifier against a plain PyTorch script; --table: deck 003's table), "
                   "word2vec (word vectors beside gensim's: words/s and the similarity "
                   "scores), forecast (the forecaster against ARIMA over seeds, stateful "
                   "against stateless)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="options of that benchmark")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserError

    try:
        module = importlib.import_module(f"rnnkit.bench.{args.name}")
    except ModuleNotFoundError as exc:
        raise UserError(f"unknown benchmark {args.name!r}: try one of "
                        f"{', '.join(BENCHMARKS)}") from exc
    if hasattr(module, "build_parser"):  # a mistyped flag of the benchmark, as main does
        from .flags import unknown_flag

        problem = unknown_flag(module.build_parser(), args.args)
        if problem:
            raise UserError(problem)
    return int(module.main(args.args) or 0)
