"""Time-series forecasting (``rnnkit train forecaster``): the Task, rolling-origin scoring, the
run.

Data (``data.series``): one or several series (``--id-column``: one global model for all, as
DeepAR), each cut at its tail into training, validation and test parts, each scaled by the mean
and standard deviation of its own training part. A seasonal series (``--season``, or read from
the dates) first has its seasonal profile taken out (``--deseason``, on by default;
``data.series.SeasonalProfile``, fitted on the training part): the network forecasts the rest,
the trend and the anomalies, and the profile is added back to its forecasts and intervals:
the classical way to a seasonal forecast (SARIMA differences the season away), taken for every
seasonal series rather than chosen per series. Validation RMSE one season ahead, 2 seeds: CO2
0.669 -> 0.500, El Nino 0.661 -> 0.692 (the test tails: 1.08 -> 1.00 and 1.11 -> 0.87;
BENCHMARKS.md).

With ``--difference`` the network reads and forecasts the standardized first differences of
the scaled values (``data.series.Differencer``, fitted on the training parts), summed back to
levels from each forecast origin, as ARIMA's d = 1: an autoregressive model sums each sampled
path (its interval is the summed paths'), a direct one is trained on the summed differences at
each horizon. Neither ``--difference`` nor ``--no-difference`` given: differenced when the
level has a unit root (the ADF test on the training parts, as ARIMA's d is chosen;
``DIFFERENCE_WHEN``); with ``--no-difference`` such a level is read relative to each window's
first value.

Training (``--no-stateful``): random windows of ``--window`` steps from the training parts,
each read from a zero state; at every step of a window the model forecasts the next
``--horizon`` values (direct) or the next one (autoregressive), wherever they lie in the
training part. ``--stateful`` (Keras' ``lstm_stateful``): each series' training part is one
stream (several when long), read in consecutive chunks of ``--window`` steps with the state
carried from chunk to chunk (detached: truncated BPTT); a forecast then reads the whole history.
Neither given: stateful for a series with no season and no unit root (``STATEFUL_WHEN``).

The model is a deep ensemble of ``--members`` forecasters (5) from different random starts,
trained side by side (``models.forecaster``); its validation RMSE (mean over the horizons)
picks the best checkpoint and stops the run after ``--patience`` evaluations without a better
one. Then (``--refit``, on) the same ensemble is trained again from the same start on the
training and validation parts together, for the epochs validation chose: the test tail is
forecast by a model that has seen everything before it, as ARIMA's parameters have.

Scoring from rolling origins: every step o of a part (validation or test) but its last is an
origin; the model reads y[:o + 1] and forecasts y[o+1 .. o+H]; at horizon h the targets are the
ones inside the part. Per horizon: MAE, RMSE, MASE (the MAE over the in-sample naive forecast's,
one season back for a seasonal series) and the share of targets inside the central ``--level``
interval (coverage). The same origins score the baselines (``train.baselines``): naive,
seasonal naive and ARIMA / seasonal ARIMA with the order chosen by AIC on the part before the
test tail. A point head's interval comes from the validation residuals at each horizon (split
conformal), written to ``RUN/intervals.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.series import (
    MAX_SARIMA_SEASON,
    Differencer,
    Scaler,
    SeasonalProfile,
    SeriesSet,
    Split,
    builtin_series,
    default_window,
    read_series,
    split_tail,
    training_windows,
)
from ..errors import UserError
from ..models.forecaster import Forecaster
from . import baselines as B
from . import distributed as D
from .rundir import RunDir
from .runs import launch, open_run, say, settings_for
from .state import seed_everything
from .trainer import Trainer, TrainSettings

DEFAULT_HORIZON = 10
DEFAULTS: dict[str, Any] = {
    "task": "forecaster",
    # data
    "dataset": None, "csv": None, "column": None, "time_column": None, "exog": None,
    "id_column": None, "encoding": "utf-8", "val_fraction": 0.1, "test_fraction": 0.1,
    "season": None, "horizon": None, "window": None, "stateful": None,
    "lags": None, "relative": None, "deseason": None, "difference": None,
    # forecasts and baselines
    "mode": None, "head": "gaussian", "level": 0.9, "samples": 200, "arima": True,
    "hindsight": False, "refit": True,
    # model
    "cell": "lstm", "hidden": 64, "layers": 1, "dropout": 0.1, "backend": "auto",
    "members": 5,
    # batches
    "batch_size": 32,
    # training (rnnkit.train.trainer.TrainSettings)
    "steps": 500, "epochs": None, "max_time": 120.0, "lr": 3e-3, "optimizer": "adamw",
    "weight_decay": 1e-4, "momentum": 0.9, "clip": 1.0, "clip_mode": "norm",
    "schedule": "cosine", "warmup": 50, "min_lr_ratio": 0.05, "ema": 0.0, "patience": 4,
    "eval_every": None, "log_every": 20, "checkpoint_every": 250,
    "seed": 0, "device": "cpu", "threads": None, "progress": True,
    # run directory
    "out": None, "resume": None,
}
METRICS = ("mae", "rmse", "mase", "coverage")
# Stateful by default only for a series with no season and no unit root (stationary cycles of
# no fixed length, as the sunspots'): a window then cuts cycles of unknown length, while a state
# carried from the first step reads them whole; with a season, a window of two seasons holds its
# shape, and a trending level is better read window by window, relative to its start. Chosen on
# the validation parts of the built-in series, 2026-12-04 (BENCHMARKS.md): a stateful ensemble
# against a stateless one, val RMSE (mean over horizons) 32.9 against 33.9 on sunspots, 1.30
# against 0.61 on CO2, 0.94 against 0.60 on El Nino.
STATEFUL_WHEN = "no season and no unit root"
# Differenced by default when the level has a unit root, as auto-ARIMA chooses d: reading the
# level relative to each window forecasts a series that leaves its training range badly (CPI
# at almost three times naive's RMSE one step ahead, population at four times the
# differenced model's). Chosen on ten series the defaults had never been tuned on (nine
# quarterly US macro series of statsmodels' macrodata and the monthly elec_equip, each with a
# unit root, seeds 0-2, test tails, 2026-12-05): differencing was better one step ahead on 7 of
# 10 and at the last horizon on 8 of 10, losing by 8 % at most; BENCHMARKS.md. CO2's validation
# part alone had pointed the other way (0.70 against 0.50 one season ahead), an optimistic
# score: early stopping picks its checkpoint on that very part.
DIFFERENCE_WHEN = "a unit root"
EVAL_SAMPLES = 50  # sampled paths an origin in the periodic evaluations (the final: --samples)


# ---- scoring -------------------------------------------------------------------------------

def origins_of(start: int, end: int) -> list[int]:
    """The forecast origins of the part ``[start, end)``: every step before one of its values.

    Example:
        >>> origins_of(7, 10)
        [6, 7, 8]
    """
    return list(range(start - 1, end - 1))


def truth_at(y: np.ndarray, origins: list[int], horizon: int, end: int) -> np.ndarray:
    """y[o + h] for each origin and h = 1..H, NaN where o + h is at or past ``end``.

    Example:
        >>> truth_at(np.arange(5.0), [2, 3], 2, 5).tolist()
        [[3.0, 4.0], [4.0, nan]]
    """
    idx = np.asarray(origins)[:, None] + np.arange(1, horizon + 1)[None, :]
    return np.where(idx < end, y[np.minimum(idx, len(y) - 1)], np.nan)


def rolling_scores(truth: list[np.ndarray], mean: list[np.ndarray], scale: list[float],
                   lower: list[np.ndarray] | None = None, upper: list[np.ndarray] | None = None
                   ) -> dict[str, float]:
    """``{mae,rmse,mase,coverage}_h{h}`` for each horizon h with a target, and their means over
    the horizons (``rmse`` ...), pooled over the series (lists: one (origins, H) array each, NaN
    truth where there is no target; ``scale`` each series' MASE denominator). No interval:
    no coverage.

    Example:
        >>> t, m = [np.array([[1.0, 2.0], [2.0, np.nan]])], [np.array([[0.0, 0.0], [2.0, 2.0]])]
        >>> s = rolling_scores(t, m, [2.0])
        >>> s["mae_h1"], s["rmse_h1"], s["mase_h1"], s["rmse_h2"]
        (0.5, 0.7071067811865476, 0.25, 2.0)
    """
    out: dict[str, float] = {}
    t = np.concatenate(truth)
    err = np.concatenate(mean) - t
    scaled = np.concatenate([np.abs(m - tr) / s for tr, m, s in zip(truth, mean, scale)])
    inside = None
    if lower is not None and upper is not None:
        inside = (np.concatenate(lower) <= t) & (t <= np.concatenate(upper))
    for h in range(t.shape[1]):
        ok = ~np.isnan(t[:, h])
        if not ok.any():
            continue
        e = err[ok, h]
        out[f"mae_h{h + 1}"] = float(np.mean(np.abs(e)))
        out[f"rmse_h{h + 1}"] = float(np.sqrt(np.mean(e ** 2)))
        out[f"mase_h{h + 1}"] = float(np.mean(scaled[ok, h]))
        if inside is not None:
            out[f"coverage_h{h + 1}"] = float(np.mean(inside[ok, h]))
    for name in METRICS:
        values = [v for k, v in out.items() if k.startswith(f"{name}_h")]
        if values:
            out[name] = float(np.mean(values))
    return out


# ---- the data of a run -------------------------------------------------------------------------

@dataclass
class Prepared:
    """The series of a run, split and scaled: for each series its raw values, scaled inputs
    (N, F) (value then exogenous columns), split, scaler, seasonal profile (None: not taken
    out) and MASE denominator; the differencer of the scaled values (None: the network reads
    the values themselves)."""

    data: SeriesSet
    y: list[np.ndarray]
    z: list[np.ndarray]
    splits: list[Split]
    scalers: list[Scaler]
    exog_scalers: list[Scaler]
    mase: list[float]
    profiles: list[SeasonalProfile | None]
    season: int | None
    horizon: int
    window: int
    differencer: Differencer | None = None

    def inputs(self, i: int) -> np.ndarray:
        """What the network reads of series ``i``: its scaled inputs, the values differenced
        when there is a differencer (``Forecaster.differenced``)."""
        z = self.z[i]
        return z if self.differencer is None else self.differencer.apply_values(z)

    def scaler_table(self) -> dict[str, Any]:
        """What ``rnnkit forecast`` needs to scale a history as training did."""
        return {"series": {s.name: [c.mean, c.std] for s, c in zip(self.data.series,
                                                                   self.scalers)},
                "exog": [[c.mean, c.std] for c in self.exog_scalers],
                "profiles": {s.name: {"offsets": f.offsets.tolist(),
                                      "anchor": s.times[0] if s.times else None}
                             for s, f in zip(self.data.series, self.profiles) if f}}

    def level(self, i: int, origins: list[int], horizon: int) -> np.ndarray:
        """What series ``i``'s forecasts from ``origins`` add back: its seasonal profile at
        each target step (origins, horizon), zeros when none was taken out."""
        steps = np.asarray(origins)[:, None] + np.arange(1, horizon + 1)
        f = self.profiles[i]
        return np.zeros(steps.shape) if f is None else f.at(steps)


def load_data(s: dict[str, Any]) -> SeriesSet:
    """The run's series: ``--csv`` with ``--column``, else ``--dataset`` (sunspots by default)."""
    if s["csv"]:
        if s["dataset"]:
            raise UserError("give either --csv (your series) or --dataset (a built-in one), "
                            "not both")
        if not s["column"]:
            raise UserError("--csv needs --column C: the column holding the series to forecast")
        exog = [c.strip() for c in s["exog"].split(",") if c.strip()] if s["exog"] else []
        return read_series(s["csv"], s["column"], s["time_column"], exog, s["id_column"],
                           s["encoding"])
    for flag in ("column", "time_column", "exog", "id_column"):
        if s[flag]:
            raise UserError(f"--{flag.replace('_', '-')} goes with --csv PATH, not with a "
                            "built-in --dataset")
    return builtin_series(s["dataset"] or "sunspots")


def prepare(data: SeriesSet, s: dict[str, Any]) -> Prepared:
    """Split, check and scale the series; set ``s``'s season, horizon and window when they
    were left to choose."""
    season = s["season"] if s["season"] is not None else data.season
    if season is not None and (not isinstance(season, int) or season < 2):
        raise UserError(f"--season must be an integer of at least 2 steps, got {season}")
    splits = [split_tail(len(x), s["val_fraction"], s["test_fraction"]) for x in data.series]
    short = min(range(len(splits)), key=lambda i: splits[i].end - splits[i].val)
    tail = splits[short].end - splits[short].val
    if tail < 1 or min(sp.val - sp.train for sp in splits) < 1:
        raise UserError("rolling-origin scoring needs a validation and a test tail: give "
                        "--val-fraction and --test-fraction above 0")
    horizon = s["horizon"] or min(season or DEFAULT_HORIZON, tail)
    if horizon < 1:
        raise UserError(f"--horizon must be a positive integer, got {horizon}")
    if horizon > tail:
        name = data.series[short].name
        raise UserError(f"--horizon {horizon} is longer than the held-out test tail of "
                        f"{tail} steps (series {name!r}, --test-fraction "
                        f"{s['test_fraction']}); ask for at most {tail}, or raise "
                        "--test-fraction")
    n_train = min(sp.train for sp in splits)
    window = s["window"] or default_window(n_train, season)
    if n_train < window + 2:
        i = min(range(len(splits)), key=lambda i: splits[i].train)
        raise UserError(f"series {data.series[i].name!r} has {len(data.series[i])} steps, "
                        f"{n_train} of them for training: too short for a window of {window} "
                        f"steps; give --window below {max(2, n_train - 1)}, or a longer "
                        "series")
    # autoregressive (DeepAR's way) unless the model reads exogenous columns, whose future
    # values a fed-back forecast would need
    mode = s["mode"] or ("direct" if data.exog_names else "autoregressive")
    profiles = seasonal_profiles(data, splits, season, s["deseason"])
    level = [x.values if f is None else f.apply(x.values)
             for x, f in zip(data.series, profiles)]
    relative, difference = s["relative"], s["difference"]
    unit_root = any(B.differences(v[:sp.train])[0] for v, sp in zip(level[:5], splits)) \
        if None in (relative, difference, s["stateful"]) else False
    if difference is None:  # see DIFFERENCE_WHEN
        difference = unit_root and not relative
    difference = bool(difference)
    if relative is None:  # a wandering level not differenced: read windows relative to it
        relative = unit_root and not difference
    stateful = s["stateful"]
    if stateful is None:  # see STATEFUL_WHEN
        stateful = season is None and not unit_root
    s.update(season=season, horizon=horizon, window=window, mode=mode, relative=relative,
             stateful=bool(stateful), deseason=any(f is not None for f in profiles),
             difference=difference)
    scalers = [Scaler.fit(v[:sp.train]) for v, sp in zip(level, splits)]
    exog_train = np.concatenate([x.exog[:sp.train] for x, sp in zip(data.series, splits)])
    exog_scalers = [Scaler.fit(exog_train[:, j]) for j in range(exog_train.shape[1])]
    z = [np.column_stack([c.apply(v), *(e.apply(x.exog[:, j])
                                        for j, e in enumerate(exog_scalers))])
         for x, v, c in zip(data.series, level, scalers)]
    mase = [B.mase_scale(x.values[:sp.val], season) for x, sp in zip(data.series, splits)]
    differencer = Differencer.fit([v[:sp.train, 0] for v, sp in zip(z, splits)]) \
        if difference else None
    return Prepared(data, [x.values for x in data.series], z, splits, scalers, exog_scalers,
                    mase, profiles, season, horizon, window, differencer)


def seasonal_profiles(data: SeriesSet, splits: list[Split], season: int | None,
                      deseason: bool | None) -> list[SeasonalProfile | None]:
    """Each series' seasonal profile, fitted on its training part (``data.series``'s
    ``SeasonalProfile``), when there is a season and ``deseason`` is not False; None for a
    series whose training part is shorter than two seasons and a step."""
    if deseason and not season:
        raise UserError("--deseason takes out a seasonal profile, but the series has no "
                        "season: give --season N (steps a season) or a --time-column of dates")
    if not season or deseason is False:
        return [None] * len(data.series)
    return [SeasonalProfile.fit(x.values[:sp.train], season)
            for x, sp in zip(data.series, splits)]


# ---- the task ----------------------------------------------------------------------------------

class ForecasterTask:
    """Windows (or streams) of the training parts for the Trainer; rolling-origin scores of the
    validation and test tails (see ``trainer.Task``)."""

    name, unit, monitor = "forecaster", "examples", "rmse"

    def __init__(self, p: Prepared, model: Forecaster, settings: dict[str, Any],
                 dist: D.Dist, device: torch.device):
        self.p, self.s, self.dist, self.device = p, settings, dist, device
        self.outputs, self.B = model.outputs, settings["batch_size"]
        self.residuals: np.ndarray | None = None  # a point head's interval (H, 2), scaled
        self.state = None
        self.order: Tensor | None = None
        if settings["stateful"]:
            self._streams()
        else:
            parts = [training_windows(p.inputs(i), sp.train, p.window, self.outputs)
                     for i, sp in enumerate(p.splits)]
            self.x, self.y, self.mask = (torch.as_tensor(np.concatenate(a, 1), dtype=torch.float32)
                                         for a in zip(*parts))
        if p.differencer is not None and model.mode == "direct":  # h steps: the sum of h
            self.y = self.y.cumsum(-1)  # differences (masked ones are past the end anyway)
        if model.relative:  # each window's values relative to its first (see the model)
            base = self.x[0, :, 0].clone()
            self.x[..., 0] -= base
            self.y -= base[None, :, None]

    def _streams(self) -> None:
        """Stateful: each training part cut into streams of at least 4 windows, side by side
        (padded at the end, where the targets are masked)."""
        streams = []
        for i, sp in enumerate(self.p.splits):
            z = self.p.inputs(i)
            n = max(1, min(self.B, (sp.train - 1) // (4 * self.p.window)))
            size = sp.train // n
            for k in range(n):
                end = sp.train if k == n - 1 else (k + 1) * size
                streams.append(training_windows(z[k * size:end], end - k * size,
                                                end - k * size - 1, self.outputs))
        T = max(x.shape[0] for x, _, _ in streams)

        def pad(a):
            return np.concatenate([a, np.zeros((T - a.shape[0], *a.shape[1:]))]) if \
                a.shape[0] < T else a
        self.x, self.y, self.mask = (torch.as_tensor(np.concatenate([pad(a) for a in part], 1),
                                                     dtype=torch.float32)
                                     for part in zip(*streams))

    def batches_per_epoch(self) -> int:
        if self.s["stateful"]:
            return math.ceil(self.x.shape[0] / self.p.window)
        return math.ceil(self.x.shape[1] / self.B)

    def start_epoch(self, epoch: int) -> None:
        self.state = None  # a stateful epoch starts each stream from zero
        g = torch.Generator().manual_seed(self.s["seed"] * 1_000_003 + epoch)
        self.order = torch.randperm(self.x.shape[1], generator=g)

    def train_step(self, model: nn.Module, epoch: int, index: int) -> tuple[Tensor, int]:
        if self.order is None:
            self.start_epoch(epoch)  # a resumed run starts mid-epoch
        if self.s["stateful"]:
            steps = slice(index * self.p.window, (index + 1) * self.p.window)
            x, y, m = self.x[steps], self.y[steps], self.mask[steps]
        else:
            rows = self.order[index * self.B:(index + 1) * self.B]
            x, y, m = self.x[:, rows], self.y[:, rows], self.mask[:, rows]
        x, y, m = x.to(self.device), y.to(self.device), m.to(self.device)
        params, state = model(x, self.state)
        if self.s["stateful"]:  # carried, but not back-propagated through (truncated BPTT)
            self.state = _detach(state)
        core = model.module if hasattr(model, "module") else model
        return core.loss(params, y, m), int(m[..., 0].sum())

    # ---- forecasts and scores ----------------------------------------------------------------
    def forecasts(self, model: Forecaster, split: str, samples: int | None = None
                  ) -> dict[str, list[np.ndarray]]:
        """Rolling-origin forecasts of ``split`` (val or test) for every series, in the series'
        units: ``origins``, ``truth``, ``mean``, ``lower``, ``upper`` (one array each)."""
        H, out = self.p.horizon, {k: [] for k in ("origins", "truth", "mean", "lower", "upper")}
        model = model.cpu() if self.device.type != "cpu" else model
        for i, (z, sp, sc) in enumerate(zip(self.p.z, self.p.splits, self.p.scalers)):
            start, end = (sp.train, sp.val) if split == "val" else (sp.val, sp.end)
            origins = origins_of(start, end)
            mean, lower, upper = model.forecast(torch.as_tensor(z, dtype=torch.float32),
                                                origins, H, self.s["level"],
                                                samples or self.s["samples"],
                                                self.s["seed"] + i)
            mean, lower, upper = (t.double().numpy() for t in (mean, lower, upper))
            if model.head_kind == "point" and split == "test":
                lower, upper = mean + self._residuals(model)[:, 0], \
                    mean + self._residuals(model)[:, 1]
            back = self.p.level(i, origins, H)  # the seasonal profile taken out, if any
            for key, v in (("origins", np.asarray(origins)), ("truth",
                           truth_at(self.p.y[i], origins, H, end)),
                           ("mean", sc.inverse(mean) + back),
                           ("lower", sc.inverse(lower) + back),
                           ("upper", sc.inverse(upper) + back)):
                out[key].append(v)
        model.to(self.device)
        return out

    def _residuals(self, model: Forecaster) -> np.ndarray:
        """A point head's interval: the (1-level)/2 and (1+level)/2 quantiles of the scaled
        validation errors at each horizon (computed once per evaluation of val)."""
        if self.residuals is None:
            self.evaluate(model, "val")
        return self.residuals

    def evaluate(self, model: nn.Module, split: str, full: bool = True) -> dict[str, float]:
        """Rolling-origin scores; while training (not ``full``) from fewer sampled paths."""
        f = self.forecasts(model, split, None if full else EVAL_SAMPLES)
        if model.head_kind == "point" and split == "val":
            self._fit_residuals(f)
        scores = rolling_scores(f["truth"], f["mean"], self.p.mase, f["lower"], f["upper"])
        if model.head_kind == "point" and split == "val":
            scores = {k: v for k, v in scores.items() if not k.startswith("coverage")}
        return scores

    def _fit_residuals(self, f: dict[str, list[np.ndarray]]) -> None:
        q = ((1 - self.s["level"]) / 2, (1 + self.s["level"]) / 2)
        err = np.concatenate([(t - m) / sc.std for t, m, sc in zip(f["truth"], f["mean"],
                                                                   self.p.scalers)])
        H = err.shape[1]
        last = np.zeros(2)
        self.residuals = np.zeros((H, 2))
        for h in range(H):  # a horizon with no validation target takes the one before it
            ok = ~np.isnan(err[:, h])
            last = np.quantile(err[ok, h], q) if ok.any() else last
            self.residuals[h] = last

    def state_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        pass

    def on_evaluate(self, model: nn.Module, step: int, run: RunDir) -> None:
        pass


def _detach(state):
    """A carried state (a tensor, an LSTM's (h, c), an ensemble's list of them) cut from
    its graph."""
    if isinstance(state, (list, tuple)):
        return type(state)(_detach(s) for s in state)
    return state.detach()


# ---- baselines -------------------------------------------------------------------------------

def baseline_scores(p: Prepared, s: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Naive, seasonal naive and ARIMA on the test origins: ``test_naive_rmse_h1`` ... for the
    summary, and the ARIMA forecasts of the first series (for the plot)."""
    H, out = p.horizon, {}
    truth, scale, found = [], p.mase, {"naive": [], "snaive": [], "arima": []}
    bounds: dict[str, list] = {"lower": [], "upper": []}
    orders, hindsight = [], []
    for y, sp in zip(p.y, p.splits):
        origins = origins_of(sp.val, sp.end)
        truth.append(truth_at(y, origins, H, sp.end))
        found["naive"].append(B.naive(y, origins, H))
        if p.season:
            found["snaive"].append(B.seasonal_naive(y, origins, H, p.season))
        if s["arima"]:
            choice, tried = B.choose_arima(y[:sp.val], p.season if p.season and
                                           p.season <= MAX_SARIMA_SEASON else None)
            mean, lower, upper = B.arima_forecasts(y, sp.val, choice, origins, H, s["level"])
            found["arima"].append(mean)
            bounds["lower"].append(lower)
            bounds["upper"].append(upper)
            orders.append(choice.name())
            if s["hindsight"]:
                hindsight.append(best_in_hindsight(y, sp, tried, origins, H, truth[-1]))
    for name, means in found.items():
        if means:
            lo, up = (bounds["lower"], bounds["upper"]) if name == "arima" else (None, None)
            scores = rolling_scores(truth, means, scale, lo, up)
            out.update({f"test_{name}_{k}": v for k, v in scores.items()})
    if orders:
        out["arima_order"] = orders[0] if len(orders) == 1 else orders
    if hindsight:
        out["arima_hindsight_order"] = hindsight[0][0]
        out.update({f"test_arima_hindsight_{k}": v for k, v in hindsight[0][1].items()})
    plot = {"arima": found["arima"][0], "arima_lower": bounds["lower"][0],
            "arima_upper": bounds["upper"][0]} if found["arima"] else {}
    return out, plot


def best_in_hindsight(y: np.ndarray, sp: Split, tried: list[B.ArimaChoice], origins: list[int],
                      H: int, truth: np.ndarray) -> tuple[str, dict[str, float]]:
    """Of the orders tried, the one whose test RMSE (mean over horizons) is lowest: what no
    forecaster could choose in advance, the baseline's best case."""
    best = None
    for choice in tried:
        try:
            mean, lower, upper = B.arima_forecasts(y, sp.val, choice, origins, H)
        except (np.linalg.LinAlgError, ValueError):
            continue
        scores = rolling_scores([truth], [mean], [B.mase_scale(y[:sp.val], None)],
                                [lower], [upper])
        if best is None or scores["rmse"] < best[1]["rmse"]:
            best = (choice.name(), scores)
    return best


# ---- the run ----------------------------------------------------------------------------------

def run_forecaster(given: dict[str, Any]) -> dict[str, Any]:
    """Train a forecaster; return the summary (also in ``RUN/summary.json``).

    ``given`` holds settings by flag name (see ``DEFAULTS``); missing ones take the defaults.

    Example:
        >>> s = run_forecaster({"dataset": "sunspots", "out": "/tmp/sun"})  # doctest: +SKIP
        >>> s["test_rmse_h1"] < s["test_arima_rmse_h1"]                     # doctest: +SKIP
        True
    """
    return launch(settings_for(given, DEFAULTS), _run)


def _run(s: dict[str, Any], dist: D.Dist, device: torch.device) -> dict[str, Any]:
    run, resume = open_run(s, "forecaster", dist)
    train_settings = TrainSettings.from_dict(s)
    if not 0 < s["level"] < 1:
        raise UserError(f"--level must be between 0 and 1 (0.9: a 90 % interval), got "
                        f"{s['level']}")
    seed_everything(s["seed"])
    data = load_data(s)
    p = prepare(data, s)
    model = Forecaster(p.z[0].shape[1], p.horizon, mode=s["mode"], head=s["head"],
                       cell=s["cell"], hidden=s["hidden"], layers=s["layers"],
                       dropout=s["dropout"], window=None if s["stateful"] else p.window,
                       lags=p.window if s["lags"] is None else s["lags"],
                       relative=s["relative"], backend=s["backend"],
                       members=s.get("members", 1),
                       difference=None if p.differencer is None else
                       [p.differencer.mean, p.differencer.std])
    task = ForecasterTask(p, model, s, dist, device)
    run.make()
    if not resume:
        run.write_json("config.json", {**s, "resume": None, "model": model.config,
                                       "scaling": p.scaler_table(),
                                       "freq": data.freq, "step": data.step,
                                       "exog_names": data.exog_names})
    extra: dict[str, Any] = {
        "dataset": data.source, "series": len(data.series), "horizon": p.horizon,
        "window": p.window, "season": p.season, "stateful": s["stateful"],
        "mode": s["mode"], "head": s["head"], "level": s["level"], "cell": s["cell"],
        "members": model.config["members"],
        "lags": model.lags, "relative": model.relative, "deseason": s["deseason"],
        "difference": s["difference"],
        "train_steps": sum(sp.train for sp in p.splits),
        "val_steps": sum(sp.val - sp.train for sp in p.splits),
        "test_steps": sum(sp.end - sp.val for sp in p.splits),
        "split": f"tail: val {s['val_fraction']}, test {s['test_fraction']}", "out": s["out"]}
    plot: dict = {}
    if dist.main:
        say(f"{data.source}: {len(data.series)} series, {extra['train_steps']:,} training / "
            f"{extra['val_steps']:,} val / {extra['test_steps']:,} test steps; horizon "
            f"{p.horizon}, window {p.window}, season {p.season or '-'}; fitting the "
            "baselines ...")
        found, plot = baseline_scores(p, s)
        extra.update(found)
        say(_baseline_line(extra))
    trainer = Trainer(model, task, train_settings, run, dist, device, summary_extra=extra)
    summary = trainer.fit()
    if summary["status"] in ("nonfinite", "interrupted"):
        return summary
    final = trainer.model
    if s.get("refit") and dist.main and not dist.active and summary.get("best_step"):
        final = refit(p, s, model.config, task, summary, run, device)
    if dist.main:
        finish(run, task, final, plot)
    return summary


def refit(p: Prepared, s: dict[str, Any], config: dict[str, Any], task: ForecasterTask,
          summary: dict[str, Any], run: RunDir, device: torch.device) -> Forecaster:
    """Train the model again from the same start on the training and validation parts
    together, for as many epochs as the validation chose (its best step), along the same
    learning-rate path per epoch; the test tail is then forecast by this model, as ARIMA's
    parameters are fitted on everything before the test tail. It becomes the run's best
    checkpoint (what ``rnnkit forecast`` uses); the validation scores and a point head's
    interval stay those of the first fit (the refit model has seen the validation part).
    Updates ``summary`` (and ``summary.json``): the refit model's ``test_*``, the first
    fit's as ``test_unrefit_*``, ``refit_steps``."""
    from dataclasses import replace

    from .checkpoint import save_checkpoint
    from .schedule import lr_factor, step_progress

    seed_everything(s["seed"])
    model = Forecaster(**config).to(device)
    whole = replace(p, splits=[Split(sp.val, sp.val, sp.end) for sp in p.splits])
    task2 = ForecasterTask(whole, model, s, D.Dist(), device)
    n1, n2 = task.batches_per_epoch(), task2.batches_per_epoch()
    steps = max(1, round(summary["best_step"] * n2 / n1))
    total1 = summary["steps"] if s["steps"] is None else s["steps"]
    factor = lr_factor(s["schedule"], s["warmup"], s["min_lr_ratio"])
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"]) \
        if s["optimizer"] == "adamw" else \
        torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                        weight_decay=s["weight_decay"])
    model.train()
    for step in range(steps):
        epoch, index = divmod(step, n2)
        if index == 0:
            task2.start_epoch(epoch)
        loss, _ = task2.train_step(model, epoch, index)
        if not math.isfinite(float(loss.detach())):
            say(f"the refit's loss became {float(loss.detach())}; keeping the first fit")
            return task_model(task, run)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s["clip"]:
            if s["clip_mode"] == "norm":
                torch.nn.utils.clip_grad_norm_(model.parameters(), s["clip"])
            else:
                torch.nn.utils.clip_grad_value_(model.parameters(), s["clip"])
        at = step * n1 / n2  # the first fit's step at the same point of an epoch
        rate = factor(int(at), step_progress(int(at), s["warmup"], total1))
        for group in opt.param_groups:
            group["lr"] = s["lr"] * rate
        opt.step()
    model.eval()
    before = {k: v for k, v in summary.items() if k.startswith("test_") and
              not any(k.startswith(f"test_{b}_") for b in ("naive", "snaive", "arima"))}
    summary.update({f"test_unrefit_{k[5:]}": v for k, v in before.items()})
    summary.update({f"test_{k}": v for k, v in task.evaluate(model, "test").items()})
    summary.update(refit_steps=steps, refit=True)
    save_checkpoint(run.checkpoints / "best.safetensors", model, None,
                    {"kind": "best", "step": summary["best_step"], "refit": True,
                     "refit_steps": steps})
    run.write_json("summary.json", summary)
    return model


def task_model(task: ForecasterTask, run: RunDir) -> Forecaster:
    """The first fit's best model, from its checkpoint."""
    from .checkpoint import load_checkpoint

    ck = load_checkpoint(run.checkpoints / "best.safetensors")
    model = Forecaster(**ck.metadata["model_config"])
    model.load_state_dict(ck.model_state)
    return model.eval()


def arima_label(order: str | list[str] | None) -> str:
    """One series' ARIMA order, or, for several series (each its own order), how many.

    Example:
        >>> arima_label("ARIMA(9,0,0)"), arima_label(["ARIMA(1,1,0)", "ARIMA(2,1,0)"])
        ('ARIMA(9,0,0)', 'ARIMA, one order per series (2)')
    """
    if isinstance(order, list):
        return f"ARIMA, one order per series ({len(order)})"
    return str(order)


def _baseline_line(extra: dict[str, Any]) -> str:
    H = extra["horizon"]
    parts = [f"{name} RMSE h1 {extra[f'test_{key}_rmse_h1']:.3g}, h{H} "
             f"{extra.get(f'test_{key}_rmse_h{H}', float('nan')):.3g}"
             for key, name in (("naive", "naive"), ("snaive", "seasonal naive"),
                               ("arima", arima_label(extra.get("arima_order"))))
             if f"test_{key}_rmse_h1" in extra]
    return "baselines on the test origins: " + "; ".join(parts)


def time_ticks(ax: Any, times: list[str] | None, start: int, end: int) -> None:
    """Label the x axis (step indices) with the series' own time labels where it has them.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> ax = plt.subplots()[1]; _ = ax.plot(range(10), range(10))
        >>> time_ticks(ax, [f"20{i:02d}" for i in range(10)], 0, 10)
        >>> [t.get_text() for t in ax.get_xticklabels()][:2], ax.get_xlabel()
        (['2000', '2002'], 'time')
    """
    if not times:
        ax.set_xlabel("step")
        return
    ticks = [int(t) for t in ax.get_xticks() if start <= t < min(end, len(times)) and t == int(t)]
    ax.set_xticks(ticks, [times[t] for t in ticks])
    ax.set_xlabel("time")


def finish(run: RunDir, task: ForecasterTask, model: Forecaster, plot: dict) -> None:
    """``intervals.json`` (a point head's residual quantiles) and ``forecast.png``."""
    if model.head_kind == "point" and task.residuals is not None:
        run.write_json("intervals.json", {"level": task.s["level"],
                                          "residuals": task.residuals.tolist()})
    from .plots import _pyplot, _save

    f = task.forecasts(model, "test")
    plt = _pyplot()
    y, sp, H = task.p.y[0], task.p.splits[0], task.p.horizon
    start = max(0, sp.val - 3 * (sp.end - sp.val))
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    ax.plot(range(start, sp.end), y[start:sp.end], color="black", lw=1, label="series")
    o, mean = f["origins"][0], f["mean"][0]
    level = int(round(100 * task.s["level"]))
    ax.plot(o + 1, mean[:, 0], color="C0", label="forecast, 1 step ahead")
    ax.fill_between(o + 1, f["lower"][0][:, 0], f["upper"][0][:, 0], color="C0", alpha=0.2,
                    label=f"{level} % interval, 1 step ahead")
    steps = np.arange(o[0] + 1, o[0] + 1 + H)
    ax.plot(steps, mean[0], color="C3", label=f"forecast from the first test origin, "
            f"{H} steps")
    ax.fill_between(steps, f["lower"][0][0], f["upper"][0][0], color="C3", alpha=0.15)
    if plot:
        ax.plot(o + 1, plot["arima"][:, 0], color="C2", ls="--", lw=1,
                label="ARIMA, 1 step ahead")
    ax.axvline(sp.val - 0.5, color="grey", ls=":", lw=1)
    time_ticks(ax, task.p.data.series[0].times, start, sp.end)
    ax.set_title(f"{task.p.data.series[0].name}: rolling-origin forecasts of the test tail")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, run.file("forecast.png"))
