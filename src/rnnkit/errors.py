"""Errors that are the user's to fix. The CLI prints their message as one line and exits 2."""


class UserError(ValueError):
    """A mistake in what the user asked for or gave (a path, a file, a flag, a checkpoint).
    The message says what was wrong and what to do."""
