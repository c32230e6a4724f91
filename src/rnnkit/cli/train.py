"""`rnnkit train` (being written)."""


def add_parser(sub) -> None:
    sub.add_parser("train", help="(not yet available)")
