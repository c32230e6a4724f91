"""Scratch buffers the bptt backward reuses from call to call (CPU).

A backward pass of an LSTM at B = 64, T = 100, H = 512 needs about 150 MB of temporaries
(the per-step coefficients and the pre-activation gradients). Fresh from the allocator, each
page of them is faulted in on first touch: 20-40 ms a step on the 2-core machine of
BENCHMARKS.md, a tenth of the whole step. Training repeats the same shapes, so the engine
hands the same buffers out again: ``empty`` inside a ``session`` takes one, and the session's
end returns every buffer it took. Nothing taken may outlive the session (no gradient returned
to autograd may be a view of one). GPU tensors come from torch's caching allocator already.

Example:
    >>> import torch
    >>> with session():
    ...     a = empty((2, 3), torch.zeros(1))
    >>> with session():
    ...     b = empty((3, 2), torch.zeros(1))
    >>> a.data_ptr() == b.data_ptr()  # the same memory, handed out again
    True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor

MAX_BYTES = 1 << 30  # what the pool keeps between calls, at most (larger ones are dropped)

_local = threading.local()  # each thread its own pool: backward passes may run in threads


def _pool() -> list[Tensor]:
    if not hasattr(_local, "free"):
        _local.free, _local.taken = [], None
    return _local.free


@contextmanager
def session() -> Iterator[None]:
    """Buffers taken with ``empty`` inside go back to the pool at the end (not nested)."""
    _pool()
    _local.taken = []
    try:
        yield
    finally:
        _local.free.extend(_local.taken)
        _local.taken = None
        _trim(_local.free)


def empty(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device: a pooled buffer
    inside a session on the CPU, else a fresh one."""
    taken = getattr(_local, "taken", None)
    if taken is None or like.device.type != "cpu":
        return like.new_empty(shape)
    n = 1
    for s in shape:
        n *= s
    free = _pool()
    fits = [i for i, b in enumerate(free) if b.dtype == like.dtype and b.numel() >= n]
    buf = free.pop(min(fits, key=lambda i: free[i].numel())) if fits else like.new_empty(n)
    taken.append(buf)
    return buf[:n].view(shape)


def _trim(free: list[Tensor]) -> None:
    """Keep the most recently returned buffers up to MAX_BYTES."""
    total = 0
    for i in range(len(free) - 1, -1, -1):
        total += free[i].numel() * free[i].element_size()
        if total > MAX_BYTES:
            del free[: i + 1]
            return


def clear() -> None:
    """Drop every pooled buffer (their memory goes back to the allocator)."""
    _pool().clear()


__all__ = ["clear", "empty", "session"]
