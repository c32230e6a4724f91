"""`rnnkit forecast RUN_DIR --horizon H`: the next H values after a history, with intervals.

The history is ``--csv PATH`` (the run's ``--column``, ``--time-column``, ``--exog`` and
``--id-column`` unless given again), or, for a run on a built-in data set, that series. Output:
CSV on stdout (``--output FILE``: to a file), one row per future step: ``step``, ``time`` (the
history's next times, when it has a time column), ``mean``, ``lower``, ``upper`` (the run's
interval level), with a leading ``series`` column for a file of several series.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys

EXAMPLE = """examples:
  rnnkit forecast runs/sun --horizon 10                 after the end of the run's own series
  rnnkit forecast runs/sales --csv sales.csv --horizon 6 > next.csv
  rnnkit forecast runs/sales --csv sales.csv --horizon 6 --output next.csv
"""


def add_parser(sub) -> None:
    from .sample import add_run_arguments

    p = sub.add_parser(
        "forecast", help="forecast a series with a trained forecaster (rnnkit train "
        "forecaster)",
        description="Forecast the next --horizon values after a history with a trained "
        "forecaster (an `rnnkit train forecaster` --out directory): CSV rows of step, time, "
        "mean, lower and upper interval bounds.", epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--csv", metavar="PATH", help="the history: a CSV or TSV file with a header "
                   "row (default: the run's built-in series)")
    p.add_argument("--horizon", type=int, metavar="H", help="steps ahead (default: the run's)")
    p.add_argument("--column", metavar="C", help="the series' column (default: the run's)")
    p.add_argument("--time-column", metavar="T", help="(default: the run's)")
    p.add_argument("--exog", metavar="A,B", help="(default: the run's)")
    p.add_argument("--id-column", metavar="S", help="(default: the run's)")
    p.add_argument("--encoding", default="utf-8", metavar="E", help="of --csv (utf-8)")
    p.add_argument("--output", metavar="FILE", help="write the CSV to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of CSV")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.series import builtin_series, read_series
    from ..errors import UserError
    from ..forecasting import load_forecaster
    from ..train.checkpoint import atomic_write_bytes, to_json

    model = load_forecaster(args.run_dir, args.checkpoint)
    c = model.config
    horizon = args.horizon if args.horizon is not None else c.get("horizon")
    if args.csv:
        column = args.column or c.get("column")
        if not column:
            raise UserError("give --column C: the column of --csv holding the series (the run "
                            "was trained on a built-in data set)")
        exog = args.exog if args.exog is not None else c.get("exog")
        names = [e.strip() for e in exog.split(",") if e.strip()] if exog else []
        if len(names) != len(model.exog_names):
            raise UserError(f"the model reads {len(model.exog_names)} exogenous column(s) "
                            f"({', '.join(model.exog_names) or 'none'}); give as many with "
                            "--exog")
        data = read_series(args.csv, column, args.time_column or c.get("time_column"), names,
                           args.id_column or c.get("id_column"), args.encoding)
    elif c.get("dataset") or not c.get("csv"):
        data = builtin_series(c.get("dataset") or "sunspots")
    else:
        raise UserError("give the history with --csv PATH (the run was trained on "
                        f"{c.get('csv')})")
    rows = []
    several = len(data.series) > 1
    for series in data.series:
        name = series.name if several or c.get("id_column") else None
        phase = model.phase_of(name, series.times[0] if series.times else None, data.freq,
                               data.step)
        f = model.forecast(series.values, horizon, series.exog if model.exog_scalers else None,
                           name, phase=phase)
        times = future_times(series.times, data.freq, data.step, horizon)
        for h in range(horizon):
            row = {"series": series.name} if several else {}
            row.update(step=h + 1, time=times[h], mean=float(f.mean[h]),
                       lower=float(f.lower[h]), upper=float(f.upper[h]))
            rows.append(row)
    if args.json:
        text = to_json({"level": model.level, "horizon": horizon, "forecasts": rows}) + "\n"
    else:
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in row.items()})
        text = buf.getvalue()
    if args.output:
        atomic_write_bytes(args.output, text.encode())
        print(f"rnnkit: wrote {len(rows):,} forecast rows to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def future_times(times: list[str] | None, freq: str | None, step: float | None,
                 horizon: int) -> list[str]:
    """The labels of the next ``horizon`` times after ``times`` (dates stepped by ``freq``,
    numbers by ``step``), written as the history writes them; empty without times.

    Example:
        >>> future_times(["2001", "2002"], None, 1.0, 2), future_times(["2020-11"], "MS", None, 2)
        (['2003', '2004'], ['2020-12', '2021-01'])
    """
    if not times:
        return [""] * horizon
    last = times[-1]
    if step is not None or freq is None:
        try:
            value = float(last)
        except ValueError:
            return [""] * horizon
        step = step or 1.0
        whole = value.is_integer() and float(step).is_integer()
        return [str(int(value + k * step)) if whole else f"{value + k * step:g}"
                for k in range(1, horizon + 1)]
    import pandas as pd

    stamps = pd.date_range(pd.Timestamp(last), periods=horizon + 1, freq=freq)[1:]
    fmt = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d"}.get(len(last), "%Y-%m-%d %H:%M:%S")
    return [t.strftime(fmt) for t in stamps]
