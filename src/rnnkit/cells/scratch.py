"""Buffers the bptt engine reuses from call to call (CPU).

A training step of an LSTM at B = 64, T = 100, H = 512 needs about 200 MB of buffers (h, c
and the gates of every step, the backward's per-step coefficients and pre-activation
gradients). Fresh from the allocator, each page is faulted in on first touch: 20-40 ms a step
on the 2-core machine of BENCHMARKS.md, a tenth of the step. Training repeats the same
shapes, so ``empty`` hands out again a buffer of the same size that nothing uses any more.

"Nothing uses it" is read from the storage's reference count: a buffer is free when the pool
holds the only reference, so one still saved by autograd for a backward, returned to the
caller, or viewed by anyone is never handed out twice. GPU tensors come from torch's caching
allocator already.

Example:
    >>> import torch
    >>> a = empty((2, 3), torch.zeros(1))
    >>> b = empty((2, 3), torch.zeros(1))
    >>> a.data_ptr() == b.data_ptr()  # a is still alive: b is another buffer
    False
    >>> ptr = a.data_ptr()
    >>> del a
    >>> empty((3, 2), torch.zeros(1)).data_ptr() == ptr  # a's memory, handed out again
    True
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

MAX_BYTES = 1 << 30  # the pool forgets its oldest buffers beyond this
_local = threading.local()  # a pool per thread


def _use_count(t: Tensor) -> int:
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


_FREE = _use_count(torch.empty(1))  # a buffer referenced by one tensor only (the pool's)


def _pool() -> list[Tensor]:
    if not hasattr(_local, "pool"):
        _local.pool = []
    return _local.pool


def empty(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device: on the CPU a
    free pooled buffer of exactly that size if there is one (else a new one, pooled)."""
    if like.device.type != "cpu":
        return like.new_empty(shape)
    n = 1
    for s in shape:
        n *= s
    pool = _pool()
    for i, b in enumerate(pool):
        if b.numel() == n and b.dtype == like.dtype and _use_count(b) == _FREE:
            pool.append(pool.pop(i))  # most recently used last
            return _alias(b, shape)
    buf = like.new_empty(n)
    pool.append(buf)
    total = sum(b.numel() * b.element_size() for b in pool)
    while total > MAX_BYTES and len(pool) > 1:  # forget the oldest (in use or not)
        total -= pool[0].numel() * pool[0].element_size()
        del pool[0]
    return _alias(buf, shape)


def _alias(buf: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A tensor of ``shape`` on buf's memory that is not a view of buf: autograd lets a
    Function's caller modify it in place (as a fresh tensor)."""
    with torch.no_grad():
        return buf.new_empty(0).set_(buf.untyped_storage(), 0, shape)


def clear() -> None:
    """Forget every pooled buffer (their memory goes back when nothing else holds it)."""
    _pool().clear()


__all__ = ["clear", "empty"]
