"""A run's settings: the task's defaults, then a ``--config FILE`` (JSON), then the flags given
on the command line, each overriding the one before. The result is what ``config.json`` holds.

Settings are one flat dict with the flags' names (``--batch-size`` -> ``batch_size``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError

# budgets and where to run may change when a run is resumed; everything else is the run's own
RESUMABLE_OVERRIDES = ("steps", "epochs", "max_time", "device", "threads", "progress", "resume",
                       "config", "json")


# the recurrent regularisers a task may take (``rnnkit.Recurrent``'s options), all off
REGULARISERS = {"recurrent_dropout": 0.0, "weight_drop": 0.0, "zoneout": 0.0}


def regularisers(settings: dict[str, Any]) -> dict[str, float]:
    """The regularisers a run's settings turn on, as ``Recurrent``'s keywords: those at 0 (and
    those of a run from before them) are left out, so a model's config stays as it was.

    Example:
        >>> regularisers({"recurrent_dropout": 0.25, "weight_drop": 0.0})
        {'recurrent_dropout': 0.25}
    """
    return {k: float(settings[k]) for k in REGULARISERS if settings.get(k)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a JSON file (an object of flag names to values)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no config file at {path}; pass a JSON file to --config")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); fix it or drop --config") from e
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold one JSON object of settings, like "
                        '{"hidden": 256, "steps": 1000}')
    return {k.replace("-", "_"): v for k, v in data.items()}


def resolve(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """defaults < the file named by ``given["config"]`` < the other ``given`` values.

    Example:
        >>> resolve({"hidden": 512, "lr": 0.002}, {"lr": 0.01})
        {'hidden': 512, 'lr': 0.01}
    """
    settings = dict(defaults)
    layers = [given]
    if given.get("config"):
        layers.insert(0, read_config_file(given["config"]))
    for layer in layers:
        unknown = sorted(set(layer) - set(defaults) - {"config", "json"})
        if unknown:
            raise UserError(f"unknown setting {unknown[0]!r}; known settings are the flags of "
                            f"this command: {', '.join(sorted(defaults))}")
        settings.update(layer)
    settings.pop("json", None)
    return settings


def resume_settings(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A resumed run keeps its stored settings; only budgets and the device may change."""
    changed = sorted(k for k, v in given.items()
                     if k not in RESUMABLE_OVERRIDES and k != "out" and stored.get(k) != v)
    if changed:
        flag = "--" + changed[0].replace("_", "-")
        raise UserError(f"--resume continues a run with its own settings, but {flag} differs "
                        f"from them; drop {flag}, or start a new run with --out")
    return {**stored, **{k: v for k, v in given.items()
                         if k in RESUMABLE_OVERRIDES and k not in ("config", "json")}}


def check_counts(s: dict[str, Any]) -> None:
    """The task's own counts (the Trainer checks the optimiser's numbers): one line each for a
    zero batch or a negative count, which would otherwise end in a traceback."""
    for name, low, note in (("batch_size", 1, ""), ("eval_examples", 0, " (0: all)"),
                            ("vocab_size", 1, " (leave it out for all)")):
        v = s.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            what = "a positive integer" if low else "a whole number >= 0"
            raise UserError(f"--{name.replace('_', '-')} must be {what}{note}, got {v!r}")
