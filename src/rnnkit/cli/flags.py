"""Flags read before argparse reads them: a mistyped flag named with the closest real one, and
``--cell list``.

argparse sets an unknown flag aside and then reads its value as the next positional, so
`rnnkit train --stpes 10` says "argument TASK: invalid choice: '10'"; these read the tokens
with the parser each one will reach (a sub-command's tokens with its own parser) first.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator


def _flag_actions(parser: argparse.ArgumentParser, flag: str) -> list[argparse.Action]:
    """The actions ``flag`` may name in ``parser``: the exact one, else every one it is a
    prefix of (argparse accepts an abbreviation that names one; none: an unknown flag)."""
    actions = parser._option_string_actions
    if flag in actions:
        return [actions[flag]]
    return list({id(a): a for s, a in actions.items() if s.startswith(flag)}.values())


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: p for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for name, p in a.choices.items()}


def _flags(argv: list[str], parser: argparse.ArgumentParser
           ) -> Iterator[tuple[argparse.ArgumentParser, str, argparse.Action | None, list[str]]]:
    """Each ``--flag`` of ``argv`` with the parser that reads it, its action (None: unknown
    there) and its values. Stops at ``--`` and where a parser hands the rest on unread
    (``rnnkit bench NAME ...``: the benchmark's own parser checks those)."""
    i, positionals = 0, 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            return
        if not token.startswith("-") or token == "-" or _is_number(token):
            subs = _subcommands(parser)
            if token in subs:
                parser, positionals = subs[token], 0
                continue
            positionals += 1
            rest = [a for a in parser._actions if not a.option_strings]
            if positionals < len(rest) and rest[positionals].nargs == argparse.REMAINDER:
                return  # the next tokens are another program's arguments
            continue
        flag, eq, value = token.partition("=")
        if not token.startswith("--"):  # -h, -x: argparse checks short flags itself
            action = parser._option_string_actions.get(flag)
            if action is None:
                continue
        else:
            found = _flag_actions(parser, flag)
            if len(found) > 1:
                return  # an ambiguous abbreviation: argparse names the candidates
            action = found[0] if found else None
        values = [value] if eq else []
        if action is not None and not eq:
            n = action.nargs
            if n == argparse.REMAINDER:
                return
            if n is None:
                values = argv[i:i + 1]
            elif isinstance(n, int):
                values = argv[i:i + n]
            elif n in ("?", "*", "+"):
                while i + len(values) < len(argv) and _is_value(argv[i + len(values)]):
                    values.append(argv[i + len(values)])
                    if n == "?":
                        break
            i += len(values)
        yield parser, flag, action, values
        if action is None:
            return  # how many values an unknown flag takes is unknown: stop here


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_value(token: str) -> bool:
    return not token.startswith("-") or token == "-" or _is_number(token)


def unknown_flag(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The one-line error for the first ``--flag`` in ``argv`` that the parser reading it does
    not know, naming the closest real flag (difflib); None when every flag is known."""
    for reader, flag, action, _ in _flags(argv, parser):
        if action is not None or not flag.startswith("--"):
            continue
        # its own flags first; then a sub-command's (`rnnkit --steps 5`: rnnkit train --steps)
        own = [s for s in reader._option_string_actions if s.startswith("--")]
        close = difflib.get_close_matches(flag, own, n=1, cutoff=0.6)
        if close:
            return f"unknown flag {flag}; did you mean {close[0]}?"
        for sub in _subcommands(reader).values():
            theirs = [s for s in sub._option_string_actions if s.startswith("--")]
            close = difflib.get_close_matches(flag, theirs, n=1, cutoff=0.6)
            if close:
                return f"unknown flag {flag}; did you mean {sub.prog} {close[0]}?"
        return f"unknown flag {flag}; see {reader.prog} --help for the flags it takes"
    return None


def asks_cell_list(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """``--cell list`` where a command takes ``--cell``: the user asks which cells there are."""
    return any(action is not None and action.dest == "cell" and values == ["list"]
               for _, _, action, values in _flags(argv, parser))
