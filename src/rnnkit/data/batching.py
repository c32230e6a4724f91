"""Batches for language models: contiguous streams (stateful, truncated BPTT) and windows.

Deck 003 trains a character model by truncated backpropagation through time: the token stream
is cut into ``batch_size`` contiguous rows, read ``bptt`` steps at a time, and the hidden state
is carried from one batch to the next (detached, so gradients stop at the batch edge). Deck 001
compares that with stateless training on independent windows, each starting from a zero state.

Both classes give time-major ``(x, y)`` LongTensors of shape ``(T, B)`` with ``y`` the next
token of ``x``, and both give batch ``i`` directly (``batch(i)``), so a resumed run continues
at the step it stopped at.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


def _as_ids(ids: Tensor | list[int]) -> Tensor:
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"ids must be a 1-D integer tensor, got {ids.dtype} of shape "
                        f"{tuple(ids.shape)}")
    return ids.long()


def _positive(**kw: int) -> None:
    for name, v in kw.items():
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


class StreamBatches:
    """Contiguous rows for stateful training with truncated BPTT.

    The ``n`` tokens give ``n - 1`` (input, target) pairs. They are cut into ``batch_size``
    contiguous rows of ``L = (n - 1) // batch_size`` pairs (row ``b`` starts where row ``b - 1``
    ends), read ``bptt`` steps at a time: row ``b`` of batch ``i + 1`` continues row ``b`` of
    batch ``i``, so the hidden state can be carried; the last batch may be shorter in T.
    Every target is predicted exactly once per epoch, except the ``(n - 1) % batch_size``
    last ones (``dropped``), fewer than one per row. With ``pad=True`` nothing is dropped: the
    first rows take one extra pair each and the rows that end one step early have
    ``y = IGNORE_INDEX`` (-100, which ``F.cross_entropy`` skips by default) and ``x = 0`` there.

    Example:
        >>> sb = StreamBatches(torch.arange(11), batch_size=2, bptt=3)
        >>> len(sb), sb.dropped
        (2, 0)
        >>> x, y = sb.batch(0)
        >>> x.T.tolist(), y.T.tolist()
        ([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]])
        >>> [t.T.tolist() for t in sb.batch(1)]
        [[[3, 4], [8, 9]], [[4, 5], [9, 10]]]
    """

    def __init__(self, ids: Tensor | list[int], batch_size: int, bptt: int, *,
                 pad: bool = False, device: torch.device | str | None = None):
        _positive(batch_size=batch_size, bptt=bptt)
        ids = _as_ids(ids)
        n, B = len(ids), batch_size
        if n - 1 < B:
            raise UserError(
                f"the text is {n} tokens long, too short for {B} rows a batch (that needs at "
                f"least {B + 1} tokens); lower --batch-size to at most {max(1, n - 1)} or give "
                "more text")
        L, r = divmod(n - 1, B)
        extra = pad and r > 0
        lengths = torch.full((B,), L, dtype=torch.long)  # target pairs in each row
        if extra:
            lengths[:r] += 1
        starts = torch.cumsum(lengths, 0) - lengths
        self.batch_size, self.bptt, self.pad = B, bptt, pad
        self.row_length = L + int(extra)  # time steps per epoch
        self.dropped = 0 if pad else r
        self.n_targets = int(lengths.sum())
        # stream[t, b] = token t of row b (its row_length + 1 tokens), IGNORE_INDEX past its end
        t = torch.arange(self.row_length + 1).unsqueeze(1)
        inside = t <= lengths.unsqueeze(0)
        index = (starts.unsqueeze(0) + t).clamp_max(n - 1)
        self.stream = torch.where(inside, ids[index], IGNORE_INDEX).to(device)

    def __len__(self) -> int:
        return -(-self.row_length // self.bptt)

    def batch(self, i: int) -> tuple[Tensor, Tensor]:
        """Batch ``i`` of the epoch: ``(x, y)``, each ``(T, B)`` with ``T <= bptt``."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range: an epoch has {len(self)} batches")
        s = i * self.bptt
        e = min(s + self.bptt, self.row_length)
        x, y = self.stream[s:e], self.stream[s + 1:e + 1]
        return (x.clamp_min(0) if self.pad else x), y

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self.batch(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return (f"StreamBatches(batch_size={self.batch_size}, bptt={self.bptt}, "
                f"row_length={self.row_length}, batches={len(self)}, dropped={self.dropped})")


class WindowBatches:
    """Independent windows of ``seq_len`` steps for stateless training, shuffled per epoch.

    The ``n`` tokens hold ``(n - 1) // seq_len`` non-overlapping windows of ``seq_len`` (input,
    target) pairs. Each epoch draws, from ``(seed, epoch)`` alone, an offset for the window grid
    (within the slack the division leaves) and an order of the windows, so any batch is
    reproducible without replaying the ones before it. The last batch has fewer windows unless
    ``drop_last``. A text shorter than ``batch_size`` windows gives smaller batches.

    Example:
        >>> wb = WindowBatches(torch.arange(13), batch_size=2, seq_len=4, seed=0)
        >>> len(wb)
        2
        >>> x, y = wb.batch(0, epoch=0)
        >>> x.shape, bool((y[:-1] == x[1:]).all())
        (torch.Size([4, 2]), True)
        >>> torch.equal(x, wb.batch(0, epoch=0)[0])
        True
    """

    def __init__(self, ids: Tensor | list[int], batch_size: int, seq_len: int, seed: int = 0,
                 *, drop_last: bool = False, device: torch.device | str | None = None):
        _positive(batch_size=batch_size, seq_len=seq_len)
        self.ids = _as_ids(ids).to(device)
        n = len(self.ids)
        self.n_windows = (n - 1) // seq_len
        if self.n_windows < 1:
            raise UserError(
                f"the text is {n} tokens long, too short for one window of --seq-len {seq_len} "
                f"(that needs {seq_len + 1} tokens); lower --seq-len to at most "
                f"{max(1, n - 1)} or give more text")
        if drop_last and self.n_windows < batch_size:
            raise UserError(
                f"the text is {n} tokens long: {self.n_windows} windows of --seq-len {seq_len}, "
                f"fewer than one batch of {batch_size}; lower --batch-size or --seq-len")
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.drop_last = drop_last
        self.slack = (n - 1) - self.n_windows * seq_len
        self.epoch = 0
        self._steps = torch.arange(seq_len + 1, device=self.ids.device).unsqueeze(1)
        self._cached: tuple[int, int, Tensor] | None = None

    def __len__(self) -> int:
        if self.drop_last:
            return self.n_windows // self.batch_size
        return -(-self.n_windows // self.batch_size)

    def order(self, epoch: int) -> tuple[int, Tensor]:
        """(offset, window order) of ``epoch``: a function of ``(seed, epoch)`` only."""
        if self._cached is None or self._cached[0] != epoch:
            state = np.random.SeedSequence([self.seed, epoch]).generate_state(2)
            g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            offset = int(torch.randint(self.slack + 1, (), generator=g))
            perm = torch.randperm(self.n_windows, generator=g).to(self.ids.device)
            self._cached = (epoch, offset, perm)
        return self._cached[1], self._cached[2]

    def batch(self, i: int, epoch: int | None = None) -> tuple[Tensor, Tensor]:
        """Batch ``i`` of ``epoch`` (default ``self.epoch``): ``(x, y)``, each ``(seq_len, b)``."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range: an epoch has {len(self)} batches")
        offset, perm = self.order(self.epoch if epoch is None else epoch)
        starts = offset + perm[i * self.batch_size:(i + 1) * self.batch_size] * self.seq_len
        tokens = self.ids[starts.unsqueeze(0) + self._steps]  # (seq_len + 1, b)
        return tokens[:-1], tokens[1:]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that iteration and ``batch(i)`` use (as DistributedSampler does)."""
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        return (self.batch(i, epoch) for i in range(len(self)))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.epoch_batches(self.epoch)

    def __repr__(self) -> str:
        return (f"WindowBatches(batch_size={self.batch_size}, seq_len={self.seq_len}, "
                f"seed={self.seed}, windows={self.n_windows}, batches={len(self)})")
