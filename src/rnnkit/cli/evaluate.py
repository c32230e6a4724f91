"""`rnnkit evaluate` (being written)."""


def add_parser(sub) -> None:
    sub.add_parser("evaluate", help="(not yet available)")
