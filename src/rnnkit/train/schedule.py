"""Learning-rate schedules: the factor of the base rate at a step.

``cosine``: linear warmup over ``warmup`` steps (Adam's early moment estimates are noisy, so
big first steps can wreck a recurrent net), then a half cosine from 1 down to ``min_ratio``
over the rest of the budget. ``constant``: the warmup, then 1.

``progress`` is the fraction of the budget spent: steps over the step budget, or, when the
budget is time alone (``--max-time``), seconds over seconds, so a run cut by the clock still
ends its schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..errors import UserError

SCHEDULES = ("cosine", "constant")


def lr_factor(kind: str, warmup: int, min_ratio: float = 0.1) -> Callable[[int, float], float]:
    """factor(step, progress) for a schedule of ``kind``.

    Example:
        >>> f = lr_factor("cosine", warmup=10)
        >>> round(f(0, 0.0), 3), f(10, 0.1), round(f(60, 0.55), 3), round(f(110, 1.0), 3)
        (0.091, 1.0, 0.55, 0.1)
    """
    if kind not in SCHEDULES:
        raise UserError(f"unknown schedule {kind!r}; choose --schedule from "
                        f"{', '.join(SCHEDULES)}")
    warmup = max(0, int(warmup))

    def factor(step: int, progress: float) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        p = min(1.0, max(0.0, progress))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))

    return factor


def step_progress(step: int, warmup: int, total: int) -> float:
    """The cosine's progress at ``step`` of a ``total``-step budget (0 at the warmup's end)."""
    return 1.0 if total <= warmup else (step - warmup) / (total - warmup)
