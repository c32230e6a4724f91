"""Generated tasks: deck 002's iterative algorithms and the long-term-dependency benchmarks.

Deck 002 contrasts a feed-forward network, which adds n-bit numbers only for one n and errs,
with a recurrent one that applies the same step to numbers of any size, exactly:

- ``binary-add``: two numbers as two input bit channels, least significant bit first, plus one
  step of zeros so the final carry comes out; the target at each step is that bit of the sum
  (synced many-to-many: the step is the full adder, the state the carry).
- ``parity``: one bit stream; the target at each step is the XOR of all bits so far.

The LSTM literature's tests of memory over T steps (where vanilla RNNs fail, decks 000-004):

- ``adding`` (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): T steps of
  (value uniform in [0, 1], marker); exactly two markers, one in each half of the sequence; the
  target is the sum of the two marked values, read at the last step (many-to-one regression).
  Always answering 1.0 has the mean squared error Var(u1 + u2) = 2/12 = 0.167.
- ``copy`` (Arjovsky et al. 2016): 10 symbols from an alphabet of 8, T - 1 blanks, a
  delimiter, 10 blanks; the target is blank for T + 10 steps, then the 10 symbols. Blanks
  then a uniform guess cost 10 log 8 / (T + 20) nats per step.

Training batches are drawn from a generator seeded by (seed, step), so batch k is the same
whether a run got there in one go or was resumed (the Trainer's resume contract). Validation
and test are fixed sets with their own seeds. For the bit tasks, a hash of each input splits the
inputs of the training length in two halves: training draws from one, validation and the
held-out test from the other, so held-out accuracy is on inputs the model never saw; the long
test (1,000-bit inputs) shows whether it learned the algorithm rather than a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError

BIT_TASKS = ("binary-add", "parity")
DATASETS = (*BIT_TASKS, "adding", "copy")
MAX_BITS = 30  # a training input is one int64 code: 2 x 30 bits for binary-add
LONG_BITS = 1000  # the long test's inputs
TRIVIAL_ADDING_MSE = 2 / 12  # always answering 1.0: the variance of u1 + u2
COPY_SYMBOLS, COPY_ALPHABET = 10, 8
BLANK, DELIMITER = 0, COPY_ALPHABET + 1  # copy's tokens: blank, symbols 1..8, delimiter
SPLIT_SALT = 0x5EED_5EED  # the held-out half is the same for every run
FIXED_ENTROPY = 0x2F6B_91C4_0D3E_8A75_C1B2_5E97_44A0_D3F1  # the fixed sets' (not a --seed)
FIXED_SETS = ("val", "test")
FEEDFORWARD_STREAM = 2**63  # the feed-forward contrast's draws (not a training step)
SMALL_SPACE = 2**16  # input spaces up to this size are listed, not sampled


@dataclass
class Examples:
    """A batch, time-major: ``x`` (T, B, F) floats or (T, B) symbols; ``y`` (T, B) classes
    per step, or (B,) regression targets read at the last step."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return self.x.shape[1]

    def part(self, rows: slice) -> Examples:
        return Examples(self.x[:, rows], self.y[..., rows])

    def to(self, device: torch.device | str) -> Examples:
        return Examples(self.x.to(device), self.y.to(device))


# ---- the four tasks, one batch each -------------------------------------------------------

def binary_add(a: Tensor, b: Tensor) -> Examples:
    """Two numbers as (B, N) bit rows, least significant bit first -> N + 1 steps of inputs
    (a_t, b_t) and sum bits; the target comes from the ripple-carry adder, deck 002's
    iteration: s = a + b + carry, output s mod 2, carry s div 2.

    Example:
        >>> e = binary_add(torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0, 0]]))  # 3 + 1
        >>> e.y[:, 0].tolist()                                                    # 4, LSB first
        [0, 0, 1, 0]
    """
    zero = torch.zeros(a.shape[0], 1, dtype=torch.long)
    a, b = torch.cat([a, zero], 1), torch.cat([b, zero], 1)  # one more step: the last carry
    carry, bits = torch.zeros(a.shape[0], dtype=torch.long), []
    for t in range(a.shape[1]):
        s = a[:, t] + b[:, t] + carry
        bits.append(s % 2)
        carry = s // 2
    return Examples(torch.stack([a, b], -1).transpose(0, 1).float(), torch.stack(bits))


def parity(bits: Tensor) -> Examples:
    """A (B, N) bit stream -> N steps; the target at each is the XOR of the bits so far.

    Example:
        >>> parity(torch.tensor([[1, 0, 1, 1]])).y[:, 0].tolist()
        [1, 1, 0, 1]
    """
    return Examples(bits.T.unsqueeze(-1).float(), (bits.cumsum(1) % 2).T)


def adding(length: int, size: int, g: torch.Generator) -> Examples:
    """``size`` adding-problem sequences of ``length`` steps: x (T, B, 2) = (value, marker),
    y (B,) = the sum of the two marked values (one marker in each half)."""
    values = torch.rand(length, size, generator=g)
    half = length // 2
    first = torch.randint(0, half, (size,), generator=g)
    second = torch.randint(half, length, (size,), generator=g)
    markers = torch.zeros(length, size)
    cols = torch.arange(size)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    return Examples(torch.stack([values, markers], -1), values[first, cols] + values[second, cols])


def copy(length: int, size: int, g: torch.Generator) -> Examples:
    """``size`` copy-task sequences of ``length + 20`` steps (symbols 1..8, blank 0,
    delimiter 9): x = symbols, T - 1 blanks, delimiter, blanks; y = blanks, then the symbols."""
    symbols = torch.randint(1, COPY_ALPHABET + 1, (COPY_SYMBOLS, size), generator=g)
    blanks = torch.full((length - 1, size), BLANK)
    tail = torch.full((COPY_SYMBOLS, size), BLANK)
    delimiter = torch.full((1, size), DELIMITER)
    x = torch.cat([symbols, blanks, delimiter, tail])
    y = torch.cat([torch.full((length + COPY_SYMBOLS, size), BLANK), symbols])
    return Examples(x, y)


def sequence_steps(dataset: str, length: int) -> int:
    """The steps of one adding or copy sequence at ``length`` T (copy: T + 20).

    Example:
        >>> sequence_steps("copy", 50), sequence_steps("adding", 50)
        (70, 50)
    """
    return length + 2 * COPY_SYMBOLS if dataset == "copy" else length


def copy_baseline_loss(length: int) -> float:
    """Nats per step of the memoryless strategy: blanks, then a uniform guess of 10 symbols."""
    return COPY_SYMBOLS * math.log(COPY_ALPHABET) / sequence_steps("copy", length)


def generator(entropy: int, stream: int) -> torch.Generator:
    """A generator for one stream of a seed (a training step, a fixed set). Mixed through
    NumPy's SeedSequence: torch's CPU generator reads only the low 32 bits of a seed, so
    ``seed * 2**32 + step`` would give every seed the same batches."""
    state = np.random.SeedSequence(entropy, spawn_key=(stream,)).generate_state(1)
    return torch.Generator().manual_seed(int(state[0]))


# ---- the held-out half of the bit tasks' inputs -----------------------------------------

def _held_out(codes: Tensor) -> Tensor:
    """Whether each input code is in the held-out half: one bit of a fixed hash (splitmix64's
    finaliser), so that nearby numbers land on either side."""
    z = codes.numpy().astype(np.uint64) + np.uint64(SPLIT_SALT)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return torch.from_numpy(((z ^ (z >> np.uint64(31))) & np.uint64(1)).astype(bool))


def draw_codes(n_bits: int, count: int, held_out: bool, g: torch.Generator) -> Tensor:
    """``count`` random ``n_bits``-bit codes from one half (with replacement)."""
    found, have = [], 0
    while have < count:
        codes = torch.randint(0, 1 << n_bits, (2 * count + 16,), generator=g)
        codes = codes[_held_out(codes) == held_out]
        found.append(codes)
        have += len(codes)
    return torch.cat(found)[:count]


def list_codes(n_bits: int, held_out: bool) -> Tensor:
    """Every ``n_bits``-bit code of one half (small spaces only)."""
    codes = torch.arange(1 << n_bits)
    return codes[_held_out(codes) == held_out]


def fixed_codes(n_bits: int, count: int, g: torch.Generator) -> Tensor:
    """A fixed set of held-out codes: distinct where the half is small enough to list (all
    of it when it holds fewer than ``count``), else drawn."""
    if 1 << n_bits > SMALL_SPACE:
        return draw_codes(n_bits, count, True, g)
    codes = list_codes(n_bits, True)
    return codes[torch.randperm(len(codes), generator=g)[:count]].sort().values


def code_bits(codes: Tensor, n_bits: int) -> Tensor:
    """(B,) codes -> (B, n_bits) bits, least significant first."""
    return (codes.unsqueeze(1) >> torch.arange(n_bits)) & 1


def bit_examples(dataset: str, bits: Tensor) -> Examples:
    """The examples of a bit task from (B, channels x N) input bits (binary-add: a's bits,
    then b's)."""
    if dataset == "binary-add":
        n = bits.shape[1] // 2
        return binary_add(bits[:, :n], bits[:, n:])
    return parity(bits)


# ---- one task with its splits --------------------------------------------------------------

class Synthetic:
    """A generated task: training batches by (seed, step), fixed validation and test sets.

    ``length`` (T) is for adding and copy, ``bits`` (the training inputs' size) for
    binary-add and parity; ``long_bits`` is the long test's input size.

    Example:
        >>> task = Synthetic("binary-add", bits=8, seed=0)
        >>> batch = task.batch(step=0, size=4)
        >>> batch.x.shape, batch.y.shape                   # 8 bits and the carry step
        (torch.Size([9, 4, 2]), torch.Size([9, 4]))
        >>> torch.equal(batch.x, task.batch(0, 4).x)       # the same batch for the same step
        True
        >>> sorted(task.fixed("test")), len(task.fixed("test", size=10)["long"])
        (['heldout', 'long'], 10)
    """

    def __init__(self, dataset: str, *, length: int | None = None, bits: int | None = None,
                 seed: int = 0, long_bits: int = LONG_BITS):
        check_dataset(dataset, length, bits)
        self.dataset, self.length, self.bits, self.seed = dataset, length, bits, seed
        self.long_bits = long_bits
        self.channels = 2 if dataset == "binary-add" else 1

    @property
    def is_bits(self) -> bool:
        return self.dataset in BIT_TASKS

    def batch(self, step: int, size: int, noise: float = 0.0) -> Examples:
        """Training batch ``step``: from its own generator, a function of (seed, step).
        ``noise``: the standard deviation of Gaussian noise added to the input bits."""
        g = generator(self.seed, step)
        if not self.is_bits:
            return self._sequences(size, g)
        n_bits = self.channels * self.bits
        e = bit_examples(self.dataset, code_bits(draw_codes(n_bits, size, False, g), n_bits))
        if noise:
            e.x = e.x + noise * torch.randn(e.x.shape, generator=g)
        return e

    def _sequences(self, size: int, g: torch.Generator) -> Examples:
        make = adding if self.dataset == "adding" else copy
        return make(self.length, size, g)

    def fixed(self, split: str, size: int = 1000) -> dict[str, Examples]:
        """The fixed set(s) of ``split`` by name: for adding and copy ``{"": examples}``; for the
        bit tasks, validation is ``{"": held-out inputs of the training size}`` and test is
        ``{"long": random long_bits-bit inputs, "heldout": held-out training-size inputs}``."""
        g = generator(FIXED_ENTROPY, FIXED_SETS.index(split))
        if not self.is_bits:
            return {"": self._sequences(size, g)}
        n_bits = self.channels * self.bits
        heldout = bit_examples(self.dataset, code_bits(fixed_codes(n_bits, size, g), n_bits))
        if split == "val":
            return {"": heldout}
        long = torch.randint(0, 2, (size, self.channels * self.long_bits), generator=g)
        return {"long": bit_examples(self.dataset, long), "heldout": heldout}

    def training_inputs(self, limit: int = SMALL_SPACE) -> Examples:
        """The training half as one set (all of it where it is small enough to list, else
        ``limit`` draws): what the feed-forward contrast learns from."""
        n_bits = self.channels * self.bits
        if 1 << n_bits <= SMALL_SPACE:
            codes = list_codes(n_bits, False)
        else:
            codes = draw_codes(n_bits, limit, False, generator(self.seed, FEEDFORWARD_STREAM))
        return bit_examples(self.dataset, code_bits(codes, n_bits))


def check_dataset(dataset: str, length: int | None, bits: int | None) -> None:
    """A clear error for an unknown dataset, or a length or size it cannot take."""
    if dataset not in DATASETS:
        raise UserError(f"unknown synthetic dataset {dataset!r}; choose --dataset from "
                        f"{', '.join(DATASETS)}")
    if dataset in BIT_TASKS:
        if length is not None:
            raise UserError(f"--length is for adding and copy; {dataset} trains on inputs of "
                            "--bits N bits (drop --length)")
        if not _whole(bits) or not 1 <= bits <= MAX_BITS:
            raise UserError(f"--bits must be a whole number from 1 to {MAX_BITS}, got {bits!r};"
                            " the long test is 1,000 bits whatever the training size")
        return
    if bits is not None:
        raise UserError(f"--bits is for binary-add and parity; {dataset} takes --length T "
                        "(drop --bits)")
    low = 2 if dataset == "adding" else 1  # adding puts one marker in each half
    if not _whole(length) or length < low:
        raise UserError(f"--length must be a whole number of at least {low} for {dataset}, got "
                        f"{length!r}; e.g. --length 50")


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
