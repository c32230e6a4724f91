"""`rnnkit sample` (being written)."""


def add_parser(sub) -> None:
    sub.add_parser("sample", help="(not yet available)")
