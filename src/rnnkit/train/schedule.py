"""Learning-rate schedules as a factor of the base rate, for ``torch.optim.lr_scheduler.LambdaLR``.

``cosine``: linear warmup over ``warmup`` steps (Adam's early moment estimates are noisy, so
big first steps can wreck a recurrent net), then a half cosine from 1 down to ``min_ratio``
at the end of the budget. ``constant``: the warmup, then 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..errors import UserError

SCHEDULES = ("cosine", "constant")


def lr_factor(kind: str, warmup: int, total: int | None,
              min_ratio: float = 0.1) -> Callable[[int], float]:
    """factor(step) for LambdaLR; ``total`` None (a time budget): cosine falls back to constant.

    Example:
        >>> f = lr_factor("cosine", warmup=10, total=110)
        >>> round(f(0), 3), f(10), round(f(60), 3), round(f(110), 3)
        (0.091, 1.0, 0.55, 0.1)
    """
    if kind not in SCHEDULES:
        raise UserError(f"unknown schedule {kind!r}; choose --schedule from "
                        f"{', '.join(SCHEDULES)}")
    warmup = max(0, int(warmup))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant" or not total or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / (total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
