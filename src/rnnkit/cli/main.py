"""``rnnkit``: the entry point. Each sub-command lives in its own module with
``add_parser(subparsers)``; the parser's ``func`` runs it. A ``UserError`` (or a missing file),
a mistyped flag or any other argparse error prints one line to stderr and exits with status 2."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

from ..errors import UserError
from .flags import asks_cell_list, unknown_flag

# sub-command modules, in the order ``rnnkit --help`` lists them
COMMANDS = ("train", "sample", "evaluate", "translate", "predict", "embed", "analyze", "report",
            "cells", "gradcheck", "forecast", "export", "bench")

EPILOG = """examples:
  rnnkit train                       train a character LSTM on the built-in corpus (~10 min),
                                     into runs/lm-TIMESTAMP (--out DIR: there)
  rnnkit sample RUN_DIR --prime "def "
                                     continue "def " with the model that run trained
  rnnkit cells                       the recurrent cells and the backends each runs on
  rnnkit bench core                  the engine benchmark (speed and memory)
"""


class Parser(argparse.ArgumentParser):
    """argparse with the project's error style: one line naming the problem and where the
    flags are explained, instead of the whole usage (train's alone is a screenful). Sub-parsers
    inherit the class (``add_subparsers`` uses ``type(self)``)."""

    def error(self, message: str):
        self.exit(2, f"rnnkit: error: {message}; see {self.prog} --help\n")


def version() -> str:
    """``rnnkit X.Y.Z (torch V)``: the installed distribution's version, as pip reports it."""
    import torch

    try:
        own = metadata.version("rnnkit")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        from .. import __version__ as own
    return f"rnnkit {own} (torch {torch.__version__})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rnnkit", description="Recurrent neural networks, from the lecture equations to "
        "trained models.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version(),
                        help="print rnnkit's and torch's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"rnnkit.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["train"]  # ``rnnkit`` alone: the main job is ``rnnkit train``
    parser = build_parser()
    problem = unknown_flag(parser, argv)
    if problem:
        print(f"rnnkit: error: {problem}", file=sys.stderr)
        return 2
    if asks_cell_list(parser, argv):
        from .cells import run as list_cells

        return list_cells(argparse.Namespace(json=False))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == 2:  # Parser.error has printed its line; --help and --version exit 0
            return 2
        raise
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
