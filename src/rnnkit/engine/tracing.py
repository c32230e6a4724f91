"""``rnnkit.tracing`` under its former name (the engine and the cells both ask it; it lives
above them so that ``cells/`` imports nothing from ``engine/``).

Example:
    >>> from rnnkit.engine.tracing import tracing
    >>> tracing()
    False
"""

from ..tracing import compiling, exporting, tracing

__all__ = ["compiling", "exporting", "tracing"]
