"""Weight averaging: evaluate and keep an exponential moving average of the training weights.

A step's weights carry the noise of its batch, most of all with the few rows a step that a
small text trains with (``sizing.SMALL_TEXT_BATCH``). Their moving average (Polyak
averaging; the EMA kept beside Adam-trained nets) smooths that noise away at no cost in steps:

    w_avg <- decay_n * w_avg + (1 - decay_n) * w          after every optimizer step

The average starts as a copy of the first step's weights and its horizon grows with the run,
``decay_n = min(decay, 1 - 1 / (1 + SHARE * n))`` after ``n`` steps: an average over about the
last ``SHARE`` of the steps so far, up to ``1 / (1 - decay)`` steps, so a short run does not
drag its first, untrained weights along. On four Debian texts, 150 s on 2 CPU cores, 8 rows a
step, the average at 0.998 ended 0.026 bits per character below the last weights on a 1 M
text seen 2.7 times, and within 0.005 of them on three seen 6-19 times; a horizon of a third of
the run, or of 1,000 steps, gained more on one text and lost on two (BENCHMARKS.md, "Weight
averaging").

The Trainer evaluates, samples from and keeps (``best.safetensors``) the average; it trains,
and resumes, the weights themselves (both are in ``last.safetensors``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

SHARE = 0.2  # the average's horizon grows as a fifth of the steps so far, up to 1 / (1 - decay)


def decay_at(decay: float, n: int) -> float:
    """The decay of the update after ``n`` averaged steps.

    Example:
        >>> decay_at(0.998, 0), round(decay_at(0.998, 100), 4), decay_at(0.998, 10_000)
        (0.0, 0.9524, 0.998)
    """
    return min(decay, 1 - 1 / (1 + SHARE * n))


def _ema(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    def update(averaged: list[Tensor], current: list[Tensor], n: Tensor) -> None:
        torch._foreach_lerp_(averaged, current, 1 - decay_at(decay, int(n)))
    return update


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of ``model``'s parameters at ``decay`` (None for 0: no averaging).
    ``update_parameters(model)`` after each step; ``.module`` is the averaged model.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 1)
        >>> avg = weight_average(net, 0.9)
        >>> avg.update_parameters(net)                   # the first: a copy
        >>> with torch.no_grad():
        ...     _ = net.weight.add_(1.0)
        >>> avg.update_parameters(net)                   # n = 1: decay 1/6, moves 5/6 of 1
        >>> torch.allclose(avg.module.weight, net.weight - 1 / 6)
        True
    """
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=_ema(decay))
