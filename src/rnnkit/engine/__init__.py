"""Running a cell over a whole sequence: one function, several backends."""

from .run import BACKENDS, run_sequence, supported_backends

__all__ = ["BACKENDS", "run_sequence", "supported_backends"]
