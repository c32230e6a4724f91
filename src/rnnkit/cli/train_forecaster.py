"""`rnnkit train forecaster`: a recurrent forecaster on a time series, beside naive, seasonal
naive and ARIMA on the same rolling origins (DESIGN.md's core flags plus the task's own)."""

from __future__ import annotations

import argparse
import math
import shlex

EXAMPLES = """examples:
  rnnkit train forecaster --dataset sunspots --out runs/sun       yearly sunspots, 10 ahead
  rnnkit train forecaster --dataset co2 --horizon 12               monthly CO2, a season ahead
  rnnkit train forecaster --csv sales.csv --column sales --time-column month --horizon 6
  rnnkit train forecaster --csv shops.csv --column sales --time-column day --id-column shop
  rnnkit train forecaster --csv load.csv --column load --exog temperature,holiday
  rnnkit train forecaster --dataset sunspots --stateful            Keras' lstm_stateful way
  rnnkit forecast runs/sun --csv history.csv --column sunspots --horizon 10   then forecast
"""


def add_parser(tasks, common: dict) -> None:
    from ..data.series import SERIES_DATASETS
    from ..models.forecaster import HEADS, MODES
    from ..train.forecaster import DEFAULTS as d
    from .train import run_flags, training_flags

    p = tasks.add_parser("forecaster", help="a time-series forecaster against ARIMA",
                         description="Train a recurrent forecaster (sliding windows, direct or "
                         "autoregressive multi-step forecasts, Gaussian or Student-t intervals "
                         "as DeepAR's) on a built-in series or your CSV, scored from rolling "
                         "origins over the held-out tail at every horizon up to --horizon, "
                         "beside naive, seasonal naive and ARIMA (order by AIC on the past "
                         "only) on the same origins.", epilog=EXAMPLES, **common)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"built-in series: {', '.join(SERIES_DATASETS)} "
                   "(sunspots when no --csv)")
    g.add_argument("--csv", metavar="PATH", help="your series: a CSV or TSV file with a header "
                   "row, one row per time step (long format with --id-column)")
    g.add_argument("--column", metavar="C", help="the column to forecast")
    g.add_argument("--time-column", metavar="T", help="dates or numbers, evenly spaced: rows "
                   "are sorted by it, gaps are refused, the season is read from it")
    g.add_argument("--exog", metavar="A,B", help="exogenous columns read beside the series "
                   "(their past values; --mode direct)")
    g.add_argument("--id-column", metavar="S", help="several series in one file, one global "
                   "model for all (as DeepAR)")
    g.add_argument("--encoding", metavar="E", help="of --csv (utf-8)")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help=f"of each series, before the test tail, for validation "
                   f"({d['val_fraction']})")
    g.add_argument("--test-fraction", type=float, metavar="F",
                   help=f"the held-out tail of each series ({d['test_fraction']})")
    g.add_argument("--season", type=int, metavar="N", help="steps a season (default: from the "
                   "dates, 12 for months; none for sunspots)")
    g.add_argument("--horizon", type=int, metavar="H", help="forecast H steps ahead (default: "
                   f"a season, else {10})")
    g.add_argument("--window", type=int, metavar="N", help="steps a forecast reads (default: "
                   "an eighth of the training part, at least two seasons, 16-64)")
    g.add_argument("--deseason", action=argparse.BooleanOptionalAction,
                   help="take each series' seasonal profile (fitted on its training part) out "
                   "of what the network reads and add it back to the forecasts (default: on "
                   "when there is a season)")
    g.add_argument("--difference", action=argparse.BooleanOptionalAction,
                   help="read and forecast the first differences of the values (after the "
                   "seasonal profile), summed back to levels from the forecast origin, as "
                   "ARIMA's d = 1 (default: on when the ADF test finds a unit root in the "
                   "training part, as ARIMA chooses d)")
    g.add_argument("--stateful", action=argparse.BooleanOptionalAction,
                   help="carry the state along each series while training and read the whole "
                   "history to forecast (off: independent windows from a zero state; default: "
                   "on for a series with no season and no unit root, as sunspots)")
    g = p.add_argument_group("forecasts and baselines")
    g.add_argument("--mode", choices=MODES, help="autoregressive: one step, fed back, sampled "
                   "paths for the intervals (default, as DeepAR); direct: all H steps at once "
                   "(the default with --exog)")
    g.add_argument("--head", choices=HEADS, help="gaussian (default), student (Student-t) or "
                   "point (squared error; intervals from validation residuals)")
    g.add_argument("--level", type=float, metavar="P", help=f"interval level ({d['level']})")
    g.add_argument("--samples", type=int, metavar="N", help="sampled paths an origin, "
                   f"autoregressive ({d['samples']})")
    g.add_argument("--arima", action=argparse.BooleanOptionalAction,
                   help="fit the ARIMA baseline (on)")
    g.add_argument("--refit", action=argparse.BooleanOptionalAction,
                   help="after validation has chosen the training length, train again on the "
                   "training and validation parts together and forecast the test tail (and "
                   "the future) with that model, as ARIMA is fitted on all before the test tail "
                   "(on)")
    g.add_argument("--hindsight", action=argparse.BooleanOptionalAction,
                   help="also report the ARIMA order with the best test RMSE, the baseline's "
                   "best case (off; slower)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=f"recurrent cell ({d['cell']}); see rnnkit cells")
    g.add_argument("--hidden", type=int, metavar="N", help=f"hidden size ({d['hidden']})")
    g.add_argument("--layers", type=int, metavar="N", help=f"stacked layers ({d['layers']})")
    g.add_argument("--dropout", type=float, metavar="P", help=f"({d['dropout']})")
    g.add_argument("--members", type=int, metavar="K", help="a deep ensemble of K forecasters "
                   "from different random starts, trained side by side; its forecast is their "
                   f"mixture (their mean, and the mixture's interval) ({d['members']}; 1: one "
                   "model)")
    g.add_argument("--relative", action=argparse.BooleanOptionalAction,
                   help="read each window relative to its first value, for a series with a "
                   "trend (default: when the ADF test finds a unit root in the training part and "
                   "--no-difference is given)")
    g.add_argument("--lags", type=int, metavar="N", help="a linear autoregression on the last N "
                   "values added to the mean (LSTNet's highway; default: the window; 0: none)")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help=f"windows a step ({d['batch_size']})")
    training_flags(p, d)
    run_flags(p, "forecaster")


def train(given: dict) -> dict:
    from ..train.forecaster import run_forecaster

    return run_forecaster(given)


def report(s: dict) -> str:
    """The run, then the table: the model and each baseline at a few horizons."""
    from ..train.forecaster import arima_label

    H = s["horizon"]
    hs = sorted({1, s.get("season") or 1, H} & set(range(1, H + 1)))
    rows = [("model", "")]
    rows += [(key, "") for key in ("naive", "snaive", "arima", "arima_hindsight")
             if f"test_{key}_rmse_h1" in s]
    kind = f"{s['head']}, {s['mode']}" + (", stateful" if s.get("stateful") else "") + \
        (", deseasonalized" if s.get("deseason") else "") + \
        (", differenced" if s.get("difference") else "")
    members = s.get("members") or 1
    names = {"model": f"{s['cell']}{f' x{members}' if members > 1 else ''} ({kind})",
             "naive": "naive",
             "snaive": "seasonal naive",
             "arima": f"{arima_label(s.get('arima_order'))} (AIC)",
             "arima_hindsight": f"{arima_label(s.get('arima_hindsight_order'))} (hindsight)"}
    width = max(len(names[k]) for k, _ in rows) + 2
    head = f"{'test, rolling origins':<{width}}" + "".join(f"{'RMSE h' + str(h):>11}"
                                                             for h in hs)
    head += f"{'MASE':>8}{'cover':>8}"
    refit = f", refit on train + val {s['refit_steps']} steps" if s.get("refit_steps") else ""
    lines = [f"run:        {s['out']}  ({s['status']}, {s['steps']} steps{refit}, "
             f"{s['train_seconds']:.0f} s)", "", head]
    for key, _ in rows:
        prefix = "test_" if key == "model" else f"test_{key}_"
        cells = "".join(f"{_num(s.get(f'{prefix}rmse_h{h}')):>11}" for h in hs)
        lines.append(f"{names[key]:<{width}}{cells}{_num(s.get(prefix + 'mase')):>8}"
                     f"{_num(s.get(prefix + 'coverage')):>8}")
    lines += ["", f"plot:       {shlex.quote(s['out'])}/forecast.png",
              f"forecast:   rnnkit forecast {shlex.quote(s['out'])} --csv HISTORY.csv "
              f"--horizon {H}"]
    return "\n".join(lines)


def _num(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"
