"""Model size and regularisation chosen from the amount of training text.

A character LSTM wide enough for a 2 MB corpus memorises a 100 kB one: after a few dozen
passes its training loss keeps falling while validation turns up, and it ends worse than a
counted 5-gram. Karpathy's char-rnn rule of thumb is to keep the parameter count near the number
of training characters and to regularise more as the text shrinks. ``TIERS`` turns that into
settings, measured on texts of 100 k to 1 M characters with a 150 s budget on 2 CPU cores
(BENCHMARKS.md, "Language models on small texts"): the smallest tier whose limit the training
text stays under gives every setting the user did not choose.

Weight decay is the other regulariser: below the main job's tier it is ten times AdamW's
usual 0.01, a pull toward small weights that more dropout does not give (same 2,500-2,800
steps of 8 rows on this slow CPU: val bpc 2.152 -> 2.131 on a 240 k text, 2.460 -> 2.425 on a
900 k one; dropout 0.25 instead of 0.15: 2.188, worse).

The largest tier is the main job's (hidden 512, dropout 0.1, weight decay 0.01 on the
1.8 M-character built-in corpus), which these defaults leave as it was.

A tier's width assumes the budget buys enough steps to train it. Where time is the only budget,
``fit_width`` times a few training steps of each narrower width on this machine and keeps the
widest that the budget gives ``MIN_STEPS``: on a CPU a quarter as fast, or with a quarter of
the time, the 256-wide model of 150 s gets about 600 steps and ends worse than a 192-wide one
that gets 1,000 (BENCHMARKS.md, "Language models on small texts"). Those few steps also
gain from a larger step: a narrowed model with a sized learning rate trains at
``SHORT_BUDGET_LR`` (val bpc 2.17 rather than 2.36 on a 300 k text, same budget).

Where the caller lets it choose the batch too (the LM, below the main job's tier), a time
budget takes ``SMALL_TEXT_BATCH`` rows a step wherever that buys ``SMALL_BATCH_GAIN`` times the
steps or more: on a small text, updates are what a budget lacks, not characters read. At any
speed: 150 s on a fast CPU (AVX-512), where 32 rows already get 2,200-2,500 steps, 8 rows and
lr 0.01 won on every text tried (val bpc, 32 rows -> 8: a 240 k text 2.202 -> 2.103, 210 k
1.888 -> 1.804, 480 k 1.990 -> 1.867, 900 k 2.352 -> 2.222; BENCHMARKS.md, "Eight rows a
step"), and so it did on a CPU a third as fast (a 150 k text: hidden 256 at 8 rows, 2,772
steps, val bpc 2.069, against 2.172 at hidden 192 and 32 rows). Where a step's time hardly
depends on its rows (a GPU), 8 rows would only read less, so the batch stays. Only where even 8
rows get too few steps (``SHORT_BUDGET_STEPS``; a 1 M-character text got 1,287 steps at hidden
384 and ended at 2.538, 2,112 at 256 and 2.481) does the width narrow: the same step's time
buys a 192-wide model about 1.47 times the steps of a 256-wide one, and 256 still wins at 1,500
of them (a 240 k text: 2.195 against 192's 2.242 at 2,200 steps).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

# (training characters below which the tier applies, settings)
TIERS: tuple[tuple[float, dict[str, Any]], ...] = (
    (150_000, {"hidden": 256, "embed": 64, "dropout": 0.25, "lr": 5e-3, "weight_decay": 0.1}),
    (600_000, {"hidden": 256, "embed": 64, "dropout": 0.15, "lr": 5e-3, "weight_decay": 0.1}),
    (1_200_000, {"hidden": 384, "embed": 128, "dropout": 0.15, "lr": 4e-3, "weight_decay": 0.1}),
    (float("inf"), {"hidden": 512, "embed": 128, "dropout": 0.1, "lr": 3e-3,
                    "weight_decay": 0.01}),
)
SIZED = ("hidden", "embed", "dropout", "lr", "weight_decay")
WIDTHS = (128, 192, 256, 384, 512)  # what fit_width may narrow a tier's width to
MIN_STEPS = 1_000  # fewer steps than this in the budget: a narrower model learns more
TRAINING_SHARE = 0.95  # of a time budget: the rest goes to the periodic evaluations
SHORT_BUDGET_LR = 1e-2  # a narrowed model's fewer steps learn more at twice the tiers' rate
SMALL_TEXT_BATCH = 8  # rows a step under a time budget, where the caller allows it
SMALL_BATCH_GAIN = 1.5  # ... and they buy this many times the steps of the larger batch
SHORT_BUDGET_STEPS = 1_500  # MIN_STEPS at those rows: each step reads a quarter of the text


def size_for(train_chars: int) -> dict[str, Any]:
    """The sized settings for a training text of ``train_chars`` characters.

    Example:
        >>> size_for(90_000)["hidden"], size_for(1_800_000)["dropout"]
        (256, 0.1)
    """
    for limit, settings in TIERS:
        if train_chars < limit:
            return dict(settings)
    raise AssertionError("the last tier has no limit")


def fill_sizes(settings: dict[str, Any], train_chars: int) -> list[str]:
    """Fill each of ``SIZED`` that is still None in ``settings`` (not given by the user) from
    ``size_for``; return the names filled, in order."""
    chosen = size_for(train_chars)
    filled = [name for name in SIZED if settings.get(name) is None]
    for name in filled:
        settings[name] = chosen[name]
    if "embed" in filled and settings.get("tie_weights"):
        settings["embed"] = settings["hidden"]  # tying needs them equal: the user asked for it
    return filled


def fit_width(settings: dict[str, Any], budget: float,
              seconds_per_step: Callable[[int], float],
              small_batch: int | None = None) -> dict[str, Any]:
    """Fit the model to a budget of ``budget`` seconds, timing a step of each candidate with
    ``seconds_per_step(width)`` (at ``settings["batch_size"]`` rows). Where ``small_batch`` is
    given and that many rows a step buy ``SMALL_BATCH_GAIN`` times the steps, take them
    (``take_small_batch``); then narrow ``settings["hidden"]`` to the widest of ``WIDTHS`` up
    to it that the budget gives ``MIN_STEPS`` steps (``SHORT_BUDGET_STEPS`` at ``small_batch``
    rows; the narrowest where none does); a tied embedding follows. Returns what was measured:
    ``{"budget": s, "seconds_per_step": {width: s}, "steps": projected steps, "hidden": w}``,
    and ``"batch": {"from": rows, "to": rows, "steps": steps at the larger}`` where the batch
    changed.

    Example:
        >>> s = {"hidden": 256, "embed": 64, "tie_weights": False}
        >>> fit_width(s, 150, lambda w: 0.25 * (w / 256) ** 2)["hidden"]  # 256: 570 steps
        192
        >>> s = {"hidden": 256, "embed": 64, "tie_weights": False, "batch_size": 32}
        >>> got = fit_width(s, 150, lambda w: s["batch_size"] / 128 * (w / 256) ** 2, 8)
        >>> got["hidden"], s["batch_size"], got["steps"], got["batch"]["steps"]
        (256, 8, 2280, 570)
    """
    widest = settings["hidden"]
    timed = {widest: seconds_per_step(widest)}
    batch = (take_small_batch(settings, budget, small_batch, widest, timed, seconds_per_step)
             if small_batch else None)
    chosen, enough = widest, SHORT_BUDGET_STEPS if batch else MIN_STEPS
    for width in [w for w in WIDTHS if w < widest][::-1]:
        if steps_in(budget, timed[chosen]) >= enough:
            break
        timed[width] = seconds_per_step(width)
        chosen = width
    settings["hidden"] = chosen
    if settings.get("tie_weights"):
        settings["embed"] = chosen
    return {"budget": budget, "seconds_per_step": timed,
            "steps": steps_in(budget, timed[chosen]), "hidden": chosen,
            **({"batch": batch} if batch else {})}


def take_small_batch(settings: dict[str, Any], budget: float, rows: int, width: int,
                     timed: dict[int, float], seconds_per_step: Callable[[int], float]
                     ) -> dict[str, Any] | None:
    """Take ``rows`` rows a step where they buy ``SMALL_BATCH_GAIN`` times the steps of
    ``settings["batch_size"]`` rows (whose step at ``width`` took ``timed[width]``; retimed in
    place) and say so: ``{"from": larger, "to": rows, "steps": steps at the larger}``; else
    leave the batch as it was and return None.

    Example:
        >>> s, timed = {"batch_size": 32}, {256: 0.05}
        >>> take_small_batch(s, 150, 8, 256, timed, lambda w: 0.045), s["batch_size"]
        (None, 32)
    """
    larger = settings["batch_size"]
    if larger <= rows:
        return None
    settings["batch_size"] = rows
    fewer = seconds_per_step(width)
    if timed[width] < SMALL_BATCH_GAIN * fewer:  # a step's rows cost little: keep reading
        settings["batch_size"] = larger
        return None
    steps = steps_in(budget, timed[width])
    timed[width] = fewer
    return {"from": larger, "to": rows, "steps": steps}


def median_step_seconds(model: torch.nn.Module, loss: Callable[[], torch.Tensor],
                        device: torch.device, steps: int = 4) -> float:
    """The median seconds of ``steps`` training steps (``loss()``, backward, AdamW) of
    ``model``, leaving out the first, which pays for warming up."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        value = loss()
        opt.zero_grad()
        value.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def steps_in(budget: float, seconds_per_step: float) -> int:
    """The training steps a ``budget`` of seconds buys at ``seconds_per_step``."""
    return int(budget * TRAINING_SHARE / seconds_per_step)


def fit_to_budget(settings: dict[str, Any], sized: list[str],
                  seconds_per_step: Callable[[int], float], device: torch.device,
                  processes: int = 1, small_batch: int | None = None) -> dict[str, Any] | None:
    """Where time is the only budget and the width was sized from the text (in ``sized``),
    fit the model to what the budget trains on this machine (``fit_width``: ``small_batch``
    rows a step first where given, then a narrower width; the global random generators left as
    they were), and where that changed anything and the learning rate was sized too, raise it
    to ``SHORT_BUDGET_LR``. What was measured and chosen, or None. One process only (processes
    timing apart could choose apart)."""
    tied_to_given = settings.get("tie_weights") and "embed" not in sized
    if ("hidden" not in sized or tied_to_given or settings.get("steps") is not None
            or settings.get("epochs") is not None or not settings.get("max_time")
            or processes > 1):
        return None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        budget = fit_width(settings, settings["max_time"], seconds_per_step, small_batch)
    if (len(budget["seconds_per_step"]) > 1 or "batch" in budget) and "lr" in sized:
        settings["lr"] = budget["lr"] = SHORT_BUDGET_LR
    return budget


def chosen_lines(settings: dict[str, Any], sized: list[str],
                 budget: dict[str, Any] | None) -> list[str]:
    """The lines that say what was sized from the text (and narrowed to the budget).

    Example:
        >>> chosen_lines({"hidden": 256, "batch_size": 32}, ["hidden", "batch_size"], None)
        ['for that much text: hidden 256, batch size 32 (give --hidden / --batch-size to choose)']
    """
    lines = [] if not sized else [
        "for that much text: " + ", ".join(f"{k.replace('_', ' ')} {settings[k]}" for k in sized)
        + " (give --" + " / --".join(k.replace("_", "-") for k in sized) + " to choose)"]
    return lines + [line for line in [narrowed(budget)] if line]


def narrowed(budget: dict[str, Any] | None) -> str | None:
    """The line that says the batch or the width was changed to fit the budget, or None where
    neither was.

    Example:
        >>> print(narrowed({"budget": 150, "seconds_per_step": {256: 0.2, 192: 0.1},
        ...                 "steps": 1425, "hidden": 192, "lr": 0.01}))
        hidden 192 rather than 256, lr 0.01: on this machine the 150 s budget gives it about
        1,425 steps, hidden 256 about 712
        >>> print(narrowed({"budget": 150, "seconds_per_step": {256: 0.05}, "steps": 2850,
        ...                 "hidden": 256, "lr": 0.01, "batch": {"from": 32, "to": 8,
        ...                                                     "steps": 712}}))
        batch size 8 rather than 32, lr 0.01: on this machine the 150 s budget gives it about
        2,850 steps, 712 at 32 rows
    """
    batch = budget.get("batch") if budget else None
    if not budget or (len(budget["seconds_per_step"]) < 2 and not batch):
        return None
    timed = {int(w): t for w, t in budget["seconds_per_step"].items()}
    wider = max(timed)
    what = [f"batch size {batch['to']} rather than {batch['from']}"] if batch else []
    if budget["hidden"] != wider:
        what.append(f"hidden {budget['hidden']} rather than {wider}")
    if budget.get("lr"):
        what[-1] += f", lr {budget['lr']:g}"
    if not batch:
        than = f"hidden {wider} about {steps_in(budget['budget'], timed[wider]):,}"
    elif budget["hidden"] == wider:
        than = f"{batch['steps']:,} at {batch['from']} rows"
    else:
        than = f"hidden {wider} at {batch['from']} rows about {batch['steps']:,}"
    return (f"{', '.join(what)}: on this machine the {budget['budget']:g} s budget gives it "
            f"about\n{budget['steps']:,} steps, {than}")
