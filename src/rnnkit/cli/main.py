"""``rnnkit``: the entry point. Each sub-command lives in its own module with
``add_parser(subparsers)``; the parser's ``func`` runs it. A ``UserError`` (or a missing file)
prints one line to stderr and exits with status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import UserError

# sub-command modules, in the order ``rnnkit --help`` lists them
COMMANDS = ("train", "sample", "evaluate", "bench")

EPILOG = """examples:
  rnnkit train                         train a character LSTM on the built-in corpus
  rnnkit bench core                    the engine benchmark (speed and memory)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks, from the lecture equations to "
        "trained models.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"rnnkit.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["train"]  # ``rnnkit`` alone: the main job is ``rnnkit train``
    parser = build_parser()
    args = parser.parse_args(argv)
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
