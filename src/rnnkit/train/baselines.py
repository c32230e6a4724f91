"""The forecaster's baselines, on the same split and origins: naive, seasonal naive, and ARIMA /
seasonal ARIMA from statsmodels.

Each takes a series y, the forecast origins o (a forecast from o reads y[:o + 1] only) and the
horizon H, and returns (len(origins), H) forecasts of y[o+1 .. o+H].

ARIMA's order is chosen by AIC on the part before the test tail only (``choose_arima``), from a
small grid that stays fast (a few seconds on 2 cores for a few hundred points):

* d (and D for a seasonal series) by unit-root test: one difference when the augmented
  Dickey-Fuller test cannot reject a unit root at 5 % (AIC cannot compare different d);
* non-seasonal: p in 0..max_p with q = 0 (AR), and p, q in 0..2;
* seasonal (season m <= 24): (p, q) in 0..2 with (0, 1, 1)_m, then (P, Q) in
  {(1, 0), (1, 1), (0, 1)} with the best (p, q).

A fit that fails (a singular start, say) is skipped. The model's parameters are fitted on the
same part; the forecasts from each origin come from the Kalman filter of the whole series with
those parameters, which reads y[:o + 1] only (``get_prediction(dynamic=True)`` from o + 1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

MAX_P = 10
LEVEL = 0.9


def naive(y: np.ndarray, origins: list[int], horizon: int) -> np.ndarray:
    """The last value seen, at every horizon.

    Example:
        >>> naive(np.array([1.0, 3.0, 2.0]), [1, 2], 2).tolist()
        [[3.0, 3.0], [2.0, 2.0]]
    """
    return np.repeat(y[np.asarray(origins)][:, None], horizon, 1)


def seasonal_naive(y: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """The value one season before each target (seen at the origin): y[o + h - m ceil(h/m)].

    Example:
        >>> seasonal_naive(np.arange(8.0), [3], 3, 2).tolist()
        [[2.0, 3.0, 2.0]]
    """
    h = np.arange(1, horizon + 1)
    back = season * np.ceil(h / season).astype(int)
    return y[np.asarray(origins)[:, None] + h[None, :] - back[None, :]]


def mase_scale(y: np.ndarray, season: int | None) -> float:
    """MASE's denominator: the mean absolute error of the in-sample (seasonal) naive forecast,
    one step (one season) back, over ``y`` (the part before the test tail).

    Example:
        >>> mase_scale(np.array([1.0, 3.0, 2.0, 5.0]), None)
        2.0
    """
    m = season if season and len(y) > season else 1
    scale = float(np.mean(np.abs(y[m:] - y[:-m]))) if len(y) > m else 1.0
    return scale if scale > 1e-12 else 1.0


@dataclass
class ArimaChoice:
    """An order, its seasonal order and AIC on the fitting part."""

    order: tuple[int, int, int]
    seasonal_order: tuple[int, int, int, int]
    aic: float

    def name(self) -> str:
        p, d, q = self.order
        P, D, Q, m = self.seasonal_order
        return f"ARIMA({p},{d},{q})" + (f"({P},{D},{Q}){m}" if m else "")


def _fit(y: np.ndarray, order, seasonal_order):
    from statsmodels.tsa.arima.model import ARIMA

    trend = "c" if order[1] == 0 and seasonal_order[1] == 0 else "n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter
        return ARIMA(y, order=order, seasonal_order=seasonal_order, trend=trend).fit()


def _try_fit(y, order, seasonal_order):
    try:
        res = _fit(y, order, seasonal_order)
    except (np.linalg.LinAlgError, ValueError, IndexError):
        return None
    return res if math.isfinite(res.aic) else None


def differences(y: np.ndarray, season: int | None = None) -> tuple[int, int]:
    """(d, D): one seasonal difference (D = 1) for a seasonal series; then one ordinary
    difference (d = 1) when the ADF test cannot reject a unit root at 5 %."""
    from statsmodels.tsa.stattools import adfuller

    D = 1 if season else 0
    z = y[season:] - y[:-season] if D else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_value = adfuller(z, autolag="AIC")[1]
    return (1 if p_value > 0.05 else 0), D


def candidates(y: np.ndarray, season: int | None, max_p: int = MAX_P) -> list[ArimaChoice]:
    """Every order of the grid (see the module doc) fitted on ``y``, with its AIC."""
    season = season if season and season <= 24 and len(y) > 3 * season else None
    d, D = differences(y, season)
    out = []

    def add(order, seasonal):
        res = _try_fit(y, order, seasonal)
        if res is not None:
            out.append(ArimaChoice(order, seasonal, float(res.aic)))

    if season is None:
        max_p = max(0, min(max_p, len(y) // 10))
        grid = [(p, 0) for p in range(max_p + 1)] + [(p, q) for p in range(3)
                                                     for q in (1, 2)]
        for p, q in grid:
            add((p, d, q), (0, 0, 0, 0))
        return out
    for p in range(3):
        for q in range(3):
            add((p, d, q), (0, D, 1, season))
    if out:
        best = min(out, key=lambda c: c.aic)
        for P, Q in ((1, 0), (1, 1)):
            add(best.order, (P, D, Q, season))
    return out


def choose_arima(y: np.ndarray, season: int | None) -> tuple[ArimaChoice, list[ArimaChoice]]:
    """The lowest-AIC order fitted on ``y`` (the part before the test tail), and every
    candidate tried."""
    tried = candidates(y, season)
    if not tried:  # nothing fitted: a random walk with drift never fails
        tried = [ArimaChoice((0, 1, 0), (0, 0, 0, 0), float("nan"))]
    return min(tried, key=lambda c: c.aic if math.isfinite(c.aic) else math.inf), tried


def arima_forecasts(y: np.ndarray, fit_end: int, choice: ArimaChoice, origins: list[int],
                    horizon: int, level: float = LEVEL
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lower and upper bounds (central ``level`` interval) of the forecasts from each
    origin, by the model of ``choice`` fitted on y[:fit_end]. Targets past the end of ``y``
    are NaN."""
    res = _fit(y[:fit_end], choice.order, choice.seasonal_order)
    full = res.apply(y)  # the same parameters, filtered over the whole series
    n = len(origins)
    mean, lower, upper = (np.full((n, horizon), np.nan) for _ in range(3))
    for i, o in enumerate(origins):
        last = min(o + horizon, len(y) - 1)
        if last <= o:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = full.get_prediction(start=o + 1, end=last, dynamic=True)
            ci = np.asarray(pred.conf_int(alpha=1 - level))
        k = last - o
        mean[i, :k] = np.asarray(pred.predicted_mean)
        lower[i, :k], upper[i, :k] = ci[:, 0], ci[:, 1]
    return mean, lower, upper
