"""A run's closing notes: what a user should know when it ends worse than it could (above its
character n-gram baseline, or having memorised its text), and what to try. Shared by the tasks
whose summary holds ``val_bpc`` beside a baseline's ``val_ngram_bpc``: ``rnnkit train lm`` and
``rnnkit train generator``; the CLI prints them as ``note:`` lines (``--json``: stderr)."""

from __future__ import annotations

import math
from typing import Any

from .rundir import RunDir


def closing_warnings(summary: dict[str, Any], metrics: list[dict[str, Any]],
                     s: dict[str, Any], *, order: int | None = None,
                     text: str = "text") -> list[str]:
    """What a user should know when a run ends worse than it could: above the n-gram baseline,
    or validation getting worse while the text was seen many times over (memorising it).

    ``metrics``: the run's metrics lines (``val_bpc``/``val_loss`` at each evaluation, the
    training ``loss``); ``s``: its settings (``dropout``, ``hidden``, the budgets and, unless
    ``order`` gives it, ``ngram_order``); ``text``: what the training data are called ("text",
    "texts"). A hint names only flags both tasks have.
    """
    if summary["status"] in ("nonfinite", "interrupted"):
        return []
    order = s["ngram_order"] if order is None else order
    out = []
    evals = [(r["step"], r["val_bpc"], r["val_loss"]) for r in metrics if "val_bpc" in r]
    train = [r["loss"] for r in metrics if "loss" in r]
    epochs = summary.get("epochs", 0.0)
    best_step, best, best_loss = min(evals, key=lambda e: e[1]) if evals else (0, 0.0, 0.0)
    # memorised: validation turned up while the training loss fell well below it
    worse = bool(evals) and evals[-1][1] > 1.02 * best
    memorised = worse and epochs >= 3 and bool(train) and train[-1] < 0.9 * best_loss
    if memorised:
        out.append(f"the model saw its {summary['train_chars']:,} training characters "
                   f"{epochs:.0f} times and validation got worse after step {best_step:,} "
                   f"(bpc {best:.3f} -> {evals[-1][1]:.3f}): it memorised the {text}; the best "
                   f"checkpoint (step {best_step:,}) is kept; try --dropout "
                   f"{min(0.5, s['dropout'] + 0.15):.2f}, --hidden {max(64, s['hidden'] // 2)} "
                   f"or more {text}")
    val, ngram = summary.get("val_bpc"), summary.get("val_ngram_bpc")
    if val is not None and ngram is not None and math.isfinite(ngram) and val > ngram:
        if memorised:
            hint = f"a smaller or more regularised model (above) or more {text}"
        elif evals and best_step >= evals[-2:][0][0]:  # the best is one of the last two
            hint = f"{_longer_budget(summary, s)} (validation was still improving at the end)"
        else:
            hint = f"more {text} or --dropout {min(0.5, s['dropout'] + 0.1):.2f}"
        out.append(f"validation bpc {val:.3f} is above the {order}-gram baseline's "
                   f"{ngram:.3f}: counting character {order}-grams predicts the validation "
                   f"{text} better than this model; try {hint}")
    return out


def _longer_budget(summary: dict[str, Any], s: dict[str, Any]) -> str:
    """The budget flag that ended the run, raised: ``--steps`` or ``--epochs`` when the run
    reached it, else the clock's (``--max-time``)."""
    if s.get("steps") is not None and summary.get("steps", 0) >= s["steps"]:
        return f"a larger --steps than {s['steps']:,}"
    if s.get("epochs") is not None and summary.get("epochs", 0.0) >= s["epochs"]:
        return f"a larger --epochs than {s['epochs']:,}"
    return "a longer --max-time"


def note_warnings(run: RunDir, summary: dict[str, Any], s: dict[str, Any], *,
                  order: int | None = None, text: str = "text") -> None:
    """Add the closing warnings (if any) to ``summary`` and to ``summary.json``."""
    warnings = closing_warnings(summary, run.metrics(), s, order=order, text=text)
    if warnings:
        summary["warnings"] = warnings
        run.write_json("summary.json", summary)
