"""Using a trained forecaster from Python: ``rnnkit.load(RUN_DIR).forecast(history, horizon)``.

The same forecasts as ``rnnkit forecast``: a history of the series (the values up to now, and
its exogenous columns when the model reads some) in, the mean and the interval of each of the
next ``horizon`` values out. The history is scaled as the run's training part was (a series
the run never saw, by its own mean and standard deviation), and a run that took a seasonal
profile out of its series takes the same one out of the history (a series it never saw: the
history's own) at the history's position in the season: ``phase``, or else the position under
which the profile best matches the history's shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.series import Scaler, SeasonalProfile
from .errors import UserError
from .models.forecaster import Forecaster


@dataclass
class Forecast:
    """The next ``horizon`` values: ``mean``, ``lower`` and ``upper`` (the central ``level``
    interval), each an array of ``horizon`` numbers."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float


class ForecastModel:
    """A trained forecaster with its scaling.

    Usually made by ``rnnkit.load(RUN_DIR)``; built here from a fresh (untrained) model:

    Example:
        >>> m = ForecastModel(Forecaster(1, horizon=4, hidden=8, window=6),
        ...                   {"scaling": {"series": {"y": [10.0, 2.0]}, "exog": []}})
        >>> f = m.forecast(np.linspace(8, 12, 20), 4)
        >>> f.mean.shape, bool((f.lower <= f.mean).all() and (f.mean <= f.upper).all())
        ((4,), True)
        >>> m.forecast(np.arange(3.0), 4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rnnkit.errors.UserError: a forecast from step 3 of the history reads the last 6 ...
    """

    def __init__(self, model: Forecaster, config: dict[str, Any], path: Path | None = None,
                 residuals: np.ndarray | None = None):
        self.model, self.config, self.path = model.eval(), config, path
        self.level = float(config.get("level", 0.9))
        self.residuals = residuals  # a point head's interval (see train.forecaster)
        scaling = config.get("scaling") or {}
        self.scalers = {k: Scaler(*v) for k, v in scaling.get("series", {}).items()}
        self.exog_scalers = [Scaler(*v) for v in scaling.get("exog", [])]
        self.profiles = {k: SeasonalProfile(np.asarray(v["offsets"], dtype=float))
                         for k, v in (scaling.get("profiles") or {}).items()}
        self.anchors = {k: v.get("anchor") for k, v in (scaling.get("profiles") or {}).items()}

    @property
    def exog_names(self) -> list[str]:
        return list(self.config.get("exog_names") or [])

    def forecast(self, history, horizon: int, exog=None, series: str | None = None,
                 samples: int | None = None, seed: int = 0, phase: int | None = None
                 ) -> Forecast:
        """Forecast the ``horizon`` values after ``history`` (1-D numbers, oldest first);
        ``exog`` (len(history), E) its exogenous columns when the model reads them; ``series``
        the name of a series the run trained on (its scaling; default: the only one, or the
        history's own); ``phase`` the history's first step's position in the season, counted
        as the training series' steps are (see ``phase_of``; default: estimated)."""
        y = np.asarray(history, dtype=float).reshape(-1)
        if not len(y) or not np.isfinite(y).all():
            raise UserError("the history must be a non-empty run of finite numbers (no NaN or "
                            "gap); fill the gaps first")
        if not isinstance(horizon, int) or horizon < 1:
            raise UserError(f"--horizon must be a positive integer, got {horizon}")
        profile = self.profile(series, y)
        if profile is not None:
            phase = profile.align(y) if phase is None else phase
            y = profile.apply(y, phase)
        x = self.scaler(series, y).apply(y)[:, None]
        if self.exog_scalers:
            if exog is None:
                raise UserError(f"this model reads the exogenous columns "
                                f"{', '.join(self.exog_names)} beside the series: give them")
            e = np.asarray(exog, dtype=float).reshape(len(y), -1)
            x = np.column_stack([x, *(s.apply(e[:, j]) for j, s in
                                     enumerate(self.exog_scalers))])
        samples = samples or int(self.config.get("samples", 200))
        mean, lower, upper = self.model.forecast(torch.as_tensor(x, dtype=torch.float32),
                                                 [len(y) - 1], horizon, self.level, samples,
                                                 seed)
        mean, lower, upper = (t[0].double().numpy() for t in (mean, lower, upper))
        if self.model.head_kind == "point" and self.residuals is not None:
            r = self.residuals[np.minimum(np.arange(horizon), len(self.residuals) - 1)]
            lower, upper = mean + r[:, 0], mean + r[:, 1]
        sc = self.scaler(series, y)
        back = np.zeros(horizon) if profile is None else \
            profile.at(np.arange(len(y), len(y) + horizon), phase)
        return Forecast(sc.inverse(mean) + back, sc.inverse(lower) + back,
                        sc.inverse(upper) + back, self.level)

    def profile(self, series: str | None, y: np.ndarray) -> SeasonalProfile | None:
        """The seasonal profile the run took out of ``series`` (as ``scaler``), or, for a
        series it never saw, the history's own; None when the run took none out."""
        if not self.profiles:
            return None
        if series is None and len(self.profiles) == 1:
            return next(iter(self.profiles.values()))
        if series in self.profiles:
            return self.profiles[series]
        season = next(iter(self.profiles.values())).season
        return SeasonalProfile.fit(y, season)

    def phase_of(self, series: str | None, first_time: str | None, freq: str | None,
                 step: float | None) -> int | None:
        """The position in the season of a history whose first time label is ``first_time``:
        the steps from the training series' first time to it (dates stepped by ``freq``,
        numbers by ``step``); None when either is unknown."""
        name = next(iter(self.anchors)) if series is None and len(self.anchors) == 1 \
            else series
        anchor = self.anchors.get(name) if name is not None else None
        if anchor is None or first_time is None:
            return None
        from .data.series import steps_between

        return steps_between(anchor, first_time, freq, step)

    def scaler(self, series: str | None, y: np.ndarray) -> Scaler:
        """The training scaling of ``series`` (the only series' when None), else the
        history's own mean and standard deviation."""
        if series is None and len(self.scalers) == 1:
            return next(iter(self.scalers.values()))
        if series in self.scalers:
            return self.scalers[series]
        return Scaler.fit(y)

    def __repr__(self) -> str:
        c = self.model.config
        return (f"ForecastModel(cell={c['cell']!r}, hidden={c['hidden']}, head={c['head']!r}, "
                f"mode={c['mode']!r}, horizon={c['horizon']}, members={c.get('members', 1)})")


def load_forecaster(run_dir: str | Path, which: str = "best") -> ForecastModel:
    """A forecaster run directory's model, scaling and intervals (see ``rnnkit.load``)."""
    from .train.checkpoint import _instead, checkpoint_path, load_checkpoint

    run_dir = Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not an rnnkit run directory (no config.json); pass the "
                        "--out directory of rnnkit train forecaster")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{config_file} is damaged ({e}); restore it or train again") from e
    if config.get("task") != "forecaster":
        raise UserError(f"{run_dir} is a {config.get('task')} run, not a forecaster; this needs "
                        "a run of rnnkit train forecaster")
    path = checkpoint_path(run_dir, which)
    ck = load_checkpoint(path)
    for key, t in ck.model_state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{path} is damaged: weights of {key} are NaN or infinite; "
                            f"{_instead(path)}")
    if ck.metadata.get("model_class") != "Forecaster" or \
            ck.metadata.get("model_config") != config.get("model"):
        raise UserError(f"{path} is not this run's forecaster (its model differs from "
                        f"config.json's); {_instead(path)}")
    try:
        model = Forecaster(**ck.metadata["model_config"])
        model.load_state_dict(ck.model_state, strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{path} does not match its model description ({first}); "
                        f"{_instead(path)}") from e
    residuals = None
    intervals = run_dir / "intervals.json"
    if intervals.is_file():
        residuals = np.asarray(json.loads(intervals.read_text())["residuals"])
    return ForecastModel(model, config, path, residuals)
