"""Time series for the forecaster: reading, checking, splitting, scaling, windows.

A series comes from the user's CSV or TSV file (``--csv PATH --column C``, optionally
``--time-column T``, ``--exog A,B`` for exogenous columns and ``--id-column S`` for several
series in one long-format file: one row per (series, time)), or from a built-in data set of
``statsmodels.datasets`` (``--dataset NAME``):

* ``sunspots``: yearly sunspot activity, 1700-2008 (309 values).
* ``co2``: Mauna Loa CO2, weekly 1958-2001 averaged to months (526 values; the 5 months with no
  weekly reading are interpolated); seasonal, 12 steps a season.
* ``elnino``: monthly sea-surface temperature of the El Nino region, 1950-2010 (732 values);
  seasonal, 12 steps a season.

Every value must be a finite number and, with a time column, the times evenly spaced with no
gap: a forecaster that silently skipped a missing month would learn a wrong season. Each
problem is a ``UserError`` naming the line and what to do.

Splits are at the tail of each series (the future is never used to fit the past): the last
``test_fraction`` is the test tail, the ``val_fraction`` before it validation, the rest the
training part. The scaling (mean and standard deviation) of each series is fitted on its
training part only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

SERIES_DATASETS = ("sunspots", "co2", "elnino")
MAX_SARIMA_SEASON = 24  # longer seasons (weekly data: 52) get the seasonal naive baseline only
SEASONS = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "D": 7, "h": 24, "H": 24,
           "B": 5}


@dataclass
class Series:
    """One series: its values (N,), exogenous columns (N, E) and time labels (or None)."""

    name: str
    values: np.ndarray
    exog: np.ndarray
    times: list[str] | None = None

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class SeriesSet:
    """The series of a run and what describes them all."""

    series: list[Series]
    source: str
    season: int | None = None  # steps a season (12 for months), None: not seasonal
    freq: str | None = None  # the time column's pandas frequency ("MS", "YS" ...), if dates
    step: float | None = None  # the time column's step, if numbers
    exog_names: list[str] = field(default_factory=list)


@dataclass
class Split:
    """Where one series' parts end: ``[0, train)``, ``[train, val)``, ``[val, len)``."""

    train: int
    val: int
    end: int


@dataclass
class Scaler:
    """``(x - mean) / std``, fitted on a training part.

    Example:
        >>> s = Scaler.fit(np.array([1.0, 2.0, 3.0]))
        >>> s.mean, round(s.std, 4), s.inverse(s.apply(np.array([5.0])))
        (2.0, 0.8165, array([5.]))
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        std = float(np.std(x))
        return cls(float(np.mean(x)), std if std > 1e-12 else 1.0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean


# ---- reading -------------------------------------------------------------------------------

def builtin_series(name: str) -> SeriesSet:
    """A built-in series from ``statsmodels.datasets`` (see the module doc)."""
    import warnings

    if name not in SERIES_DATASETS:
        raise UserError(f"unknown --dataset {name!r} for the forecaster; choose one of "
                        f"{', '.join(SERIES_DATASETS)}, or give --csv PATH --column C")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "sunspots":
            from statsmodels.datasets import sunspots

            d = sunspots.load_pandas().data
            times = [str(int(y)) for y in d["YEAR"]]
            return SeriesSet([_series("sunspots", d["SUNACTIVITY"].to_numpy(float), times)],
                             "sunspots (statsmodels)", None, "YS")
        if name == "co2":
            from statsmodels.datasets import co2

            monthly = co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
            times = [t.strftime("%Y-%m") for t in monthly.index]
            return SeriesSet([_series("co2", monthly.to_numpy(float), times)],
                             "co2 monthly (statsmodels)", 12, "MS")
        from statsmodels.datasets import elnino

        d = elnino.load_pandas().data
        months = d.columns[1:]
        values = d[months].to_numpy(float).reshape(-1)
        times = [f"{int(y)}-{m:02d}" for y in d["YEAR"] for m in range(1, 13)]
        return SeriesSet([_series("elnino", values, times)], "elnino (statsmodels)", 12, "MS")


def _series(name: str, values: np.ndarray, times: list[str] | None,
            exog: np.ndarray | None = None) -> Series:
    return Series(name, values, np.zeros((len(values), 0)) if exog is None else exog, times)


def read_series(path: str | Path, column: str, time_column: str | None = None,
                exog: list[str] | None = None, id_column: str | None = None,
                encoding: str = "utf-8") -> SeriesSet:
    """The series in a CSV or TSV file (see the module doc); rows in file order (with a time
    column, sorted by time within each series).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
        >>> _ = f.write_text("month,sales\\n2020-01,3\\n2020-02,4.5\\n2020-03,5\\n")
        >>> s = read_series(f, "sales", "month")
        >>> s.series[0].values.tolist(), s.season, s.series[0].times[-1]
        ([3.0, 4.5, 5.0], 12, '2020-03')
    """
    from .labelled import read_table

    table = read_table(path, "--csv", encoding)
    index = {"target": table.column(column, "--column")}
    if time_column:
        index["time"] = table.column(time_column, "--time-column")
    if id_column:
        index["id"] = table.column(id_column, "--id-column")
    exog = list(exog or [])
    exog_index = [table.column(c, "--exog") for c in exog]
    cells = {k: table.cells(i, f"{k} column") for k, i in index.items()}
    cols = [table.cells(i, f"exogenous column {c!r}") for c, i in zip(exog, exog_index)]
    target = _numbers(cells["target"], column, table)
    extra = np.stack([_numbers(c, name, table) for c, name in zip(cols, exog)], 1) if exog \
        else np.zeros((len(target), 0))
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(cells.get("id", ["series"] * len(target))):
        groups.setdefault(key, []).append(i)
    out, freq, step = [], None, None
    for key, rows in groups.items():
        times = None
        if time_column:
            rows, times, freq, step = _in_time_order(rows, cells["time"], table, key)
        name = key if id_column else column
        out.append(_series(name, target[rows], times, extra[rows]))
    season = SEASONS.get((freq or "").split("-")[0])
    return SeriesSet(out, str(table.path), season, freq, step, exog)


def _numbers(cells: list[str], name: str, table) -> np.ndarray:
    """The cells as floats; an empty, NaN, infinite or non-numeric cell is a ``UserError``."""
    out = np.empty(len(cells))
    for i, (cell, line) in enumerate(zip(cells, table.lines)):
        try:
            out[i] = float(cell)
        except ValueError:
            if not cell:
                _missing(table, line, name, "is empty")
            raise UserError(f"{table.path}: line {line}: {cell!r} in column {name!r} is not a "
                            "number; fix or delete the row") from None
        if not math.isfinite(out[i]):
            _missing(table, line, name, f"is {cell}")
    return out


def _missing(table, line: int, name: str, what: str) -> None:
    raise UserError(f"{table.path}: line {line}: column {name!r} {what} (a missing value); "
                    "fill it in (for example by interpolating its neighbours) or cut the series "
                    "there: the forecaster needs an unbroken series")


def _in_time_order(rows: list[int], times: list[str], table, key: str
                   ) -> tuple[list[int], list[str], str | None, float | None]:
    """The rows sorted by time, their time labels, and the frequency (dates) or step
    (numbers); a gap or an uneven step is a ``UserError``."""
    import pandas as pd

    labels = [times[i] for i in rows]
    try:
        numbers = np.array([float(t) for t in labels])
    except ValueError:
        numbers = None
    where = "" if key == "series" else f" (series {key!r})"
    if numbers is not None:
        order = np.argsort(numbers, kind="stable")
        values = numbers[order]
        return [rows[i] for i in order], [labels[i] for i in order], None, \
            _even_step(values, [table.lines[rows[i]] for i in order], table, where)
    try:
        stamps = pd.to_datetime(pd.Series(labels), format="mixed")
    except (ValueError, TypeError) as e:
        raise UserError(f"{table.path}: the time column{where} holds {labels[0]!r}..., neither "
                        f"numbers nor dates ({str(e).splitlines()[0]}); give dates such as "
                        "2020-01-31 or drop --time-column") from None
    order = np.argsort(stamps.to_numpy(), kind="stable")
    stamps = pd.DatetimeIndex(stamps.to_numpy()[order])
    lines = [table.lines[rows[i]] for i in order]
    if stamps.has_duplicates:
        i = int(np.argmax(stamps.duplicated()))
        raise UserError(f"{table.path}: line {lines[i]}: time {labels[order[i]]!r} appears twice"
                        f"{where}; keep one row per time (or give --id-column for several "
                        "series)")
    freq = _infer_freq(stamps)
    if freq is None:
        _gap(stamps, lines, table, where)
    return [rows[i] for i in order], [labels[i] for i in order], freq, None


def _infer_freq(stamps) -> str | None:
    """pandas' name for the times' step ("MS", "YS-JAN" ...), None if they are uneven."""
    import warnings

    import pandas as pd

    if len(stamps) < 3:
        return None
    with warnings.catch_warnings():  # newer pandas warns it will return an offset object
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(stamps)
    return getattr(freq, "freqstr", freq)


def _even_step(values: np.ndarray, lines: list[int], table, where: str) -> float | None:
    if len(values) < 2:
        return None
    steps = np.diff(values)
    step = float(np.median(steps))
    bad = np.flatnonzero(~np.isclose(steps, step, rtol=1e-6, atol=1e-9))
    if step <= 0 or len(bad):
        i = int(bad[0]) if len(bad) else 0
        raise UserError(f"{table.path}: line {lines[i + 1]}: time {values[i + 1]:g} follows "
                        f"{values[i]:g}{where}, but the series steps by {step:g}: a gap or a "
                        "repeated time; fill in the missing steps (interpolate) or cut the "
                        "series there")
    return step


def _gap(stamps, lines: list[int], table, where: str) -> None:
    """Name the first step that breaks the spacing of the first few times."""
    import pandas as pd

    freq = _infer_freq(stamps[:5]) if len(stamps) >= 5 else None
    if freq is not None:
        expected = pd.date_range(stamps[0], periods=len(stamps), freq=freq)
        i = int(np.argmax(expected != stamps))
        raise UserError(f"{table.path}: line {lines[i]}: time {stamps[i].date()} follows "
                        f"{stamps[i - 1].date()}{where}, but the series steps by {freq} "
                        f"(expected {expected[i].date()}): a gap; fill in the missing steps "
                        "(interpolate) or cut the series there")
    raise UserError(f"{table.path}: the times{where} are not evenly spaced (no daily, monthly, "
                    "yearly ... step fits them); fill the gaps, or drop --time-column")


# ---- splits, scaling and windows -------------------------------------------------------------

def split_tail(n: int, val_fraction: float, test_fraction: float) -> Split:
    """The last ``test_fraction`` of ``n`` steps for testing, the ``val_fraction`` before it
    for validation (each at least one step when its fraction is above 0).

    Example:
        >>> split_tail(309, 0.1, 0.1)
        Split(train=247, val=278, end=309)
    """
    for name, f in (("val", val_fraction), ("test", test_fraction)):
        if not 0 <= f < 1:
            raise UserError(f"--{name}-fraction must be in [0, 1), got {f}")
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    return Split(n - n_test - n_val, n - n_test, n)


def training_windows(z: np.ndarray, end: int, window: int, outputs: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of ``window`` input steps of ``z`` (N, F) within ``[0, end)``, and at each
    of its steps t the next ``outputs`` targets z[t+1 .. t+outputs, 0] (forking sequences, as
    MQ-RNN: every step of a window is a forecast origin), with a mask that is False where a
    target lies at or beyond ``end``. Returns (inputs (W, n, F), targets (W, n, outputs),
    mask (W, n, outputs)).

    Example:
        >>> x, y, m = training_windows(np.arange(6.0)[:, None], 6, 3, 2)
        >>> x.shape, y[:, 0].tolist()
        ((3, 3, 1), [[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
        >>> m[:, -1].tolist()
        [[True, True], [True, True], [True, False]]
    """
    starts = np.arange(0, end - window)  # the last window's last input is end - 2
    steps = starts[:, None] + np.arange(window)[None, :]  # (n, W)
    ahead = steps[..., None] + np.arange(1, outputs + 1)  # (n, W, outputs)
    mask = ahead < end
    targets = z[np.minimum(ahead, end - 1), 0] * mask
    return (z[steps].transpose(1, 0, 2), targets.transpose(1, 0, 2), mask.transpose(1, 0, 2))


def default_window(n_train: int, season: int | None) -> int:
    """Input steps a window: an eighth of the training part, at least two seasons, 16 to 64.

    Example:
        >>> default_window(247, None), default_window(420, 12), default_window(5000, None)
        (30, 52, 64)
    """
    return int(min(64, max(16, 2 * (season or 0), n_train // 8)))


@dataclass
class SeasonalProfile:
    """A season's fixed shape, fitted on a training part by classical decomposition: the
    centred moving average of one season is the trend, the mean of what is left at each
    position of the season the profile (summing to zero). The forecaster reads the series
    with the profile taken out and adds it back to its forecasts (a known shape, not one the
    network must learn from a few hundred steps; what is left, the trend and the anomalies, is
    what it forecasts). Step t of a series is at position ``(phase + t) % season``.

    Example:
        >>> t = np.arange(48)
        >>> y = 10 + 0.1 * t + np.tile([3.0, -1.0, -2.0, 0.0], 12)
        >>> p = SeasonalProfile.fit(y, 4)
        >>> (p.offsets.round(6) + 0.0).tolist()
        [3.0, -1.0, -2.0, 0.0]
        >>> bool(np.allclose(p.inverse(p.apply(y), 0), y)), p.align(y[5:]) == 5 % 4
        (True, True)
    """

    offsets: np.ndarray  # (season,): the profile at each position of the season

    @property
    def season(self) -> int:
        return len(self.offsets)

    @classmethod
    def fit(cls, y: np.ndarray, season: int) -> SeasonalProfile | None:
        """The profile of ``y`` (at least two seasons and a step; None when shorter)."""
        detrended, positions = _detrended(y, season)
        if detrended is None:
            return None
        offsets = np.array([detrended[positions % season == k].mean() for k in range(season)])
        return cls(offsets - offsets.mean())

    def at(self, steps: np.ndarray, phase: int = 0) -> np.ndarray:
        """The profile at the series' ``steps`` (integers, step 0 at position ``phase``)."""
        return self.offsets[(np.asarray(steps) + phase) % self.season]

    def apply(self, y: np.ndarray, phase: int = 0) -> np.ndarray:
        return y - self.at(np.arange(len(y)), phase)

    def inverse(self, x: np.ndarray, phase: int = 0) -> np.ndarray:
        return x + self.at(np.arange(len(x)), phase)

    def align(self, y: np.ndarray) -> int:
        """The position in the season of ``y``'s first step, for a history with no time
        labels: the one under which the profile best matches ``y``'s own detrended shape (0
        when ``y`` is shorter than two seasons)."""
        detrended, positions = _detrended(y, self.season)
        if detrended is None:
            return 0
        cost = [np.sum((detrended - self.at(positions, k)) ** 2) for k in range(self.season)]
        return int(np.argmin(cost))


def _detrended(y: np.ndarray, season: int) -> tuple[np.ndarray | None, np.ndarray]:
    """``y`` less its centred moving average of one season (2 x m for an even m), and each
    value's step index; (None, empty) when ``y`` has fewer than 2 seasons and a step."""
    if len(y) < 2 * season + 1:
        return None, np.zeros(0, dtype=int)
    even = season % 2 == 0
    kernel = np.r_[0.5, np.ones(season - 1), 0.5] / season if even else np.ones(season) / season
    trend = np.convolve(y, kernel, mode="valid")
    first = (len(kernel) - 1) // 2
    steps = np.arange(first, first + len(trend))
    return y[steps] - trend, steps


@dataclass
class Differencer:
    """First differences of a (scaled) series, standardized by their mean (the drift) and
    standard deviation on a training part: what a network reads and forecasts in place of a
    level with a unit root (ARIMA's d = 1). ``apply`` maps z (N,) to d with
    ``d[t] = (z[t] - z[t-1] - mean) / std`` (step 0 has no past: 0); a forecast integrates the
    standardized differences after origin o back with ``integrate``: z[o + h] = z[o] + h mean +
    std (d[o+1] + ... + d[o+h]), an increasing affine map at each h, so that a forecast's mean
    and quantiles of the summed differences map to the level's.

    Example:
        >>> z = np.array([1.0, 2.0, 4.0, 7.0])
        >>> f = Differencer.fit([z])
        >>> f.mean, f.apply(z).round(4).tolist()
        (2.0, [0.0, -1.2247, 0.0, 1.2247])
        >>> f.integrate(np.array([z[1]]), np.cumsum(f.apply(z)[2:])[None]).tolist()
        [[4.0, 7.0]]
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, parts: list[np.ndarray]) -> Differencer:
        """Pooled over the training parts ``parts`` (one model reads them all)."""
        steps = np.concatenate([np.diff(z) for z in parts])
        std = float(np.std(steps)) if len(steps) else 1.0
        return cls(float(np.mean(steps)) if len(steps) else 0.0, std if std > 1e-12 else 1.0)

    def apply(self, z: np.ndarray) -> np.ndarray:
        d = (np.diff(z, prepend=z[:1]) - self.mean) / self.std
        d[:1] = 0.0
        return d

    def apply_values(self, z: np.ndarray) -> np.ndarray:
        """Inputs ``z`` (N, F) with their values (column 0) differenced by ``apply``."""
        return np.column_stack([self.apply(z[:, 0]), z[:, 1:]])

    def integrate(self, last, summed):
        """The levels from ``last`` (n,) at each origin and the cumulative sums ``summed`` (n,
        H) of the standardized differences after it (arrays or tensors)."""
        steps = np.arange(1, summed.shape[-1] + 1, dtype=float)
        if hasattr(summed, "new_tensor"):  # a torch tensor
            steps = summed.new_tensor(steps)
        return last[:, None] + self.mean * steps + self.std * summed


def steps_between(first: str, later: str, freq: str | None, step: float | None) -> int | None:
    """How many steps of the series' time column lead from label ``first`` to ``later``
    (negative when ``later`` is earlier): dates stepped by ``freq``, numbers by ``step``;
    None when the labels are neither.

    Example:
        >>> steps_between("1958-03", "1959-01", "MS", None), steps_between("5", "2", None, 1.5)
        (10, -2)
    """
    try:
        if step is not None:
            return round((float(later) - float(first)) / step)
        if freq is None:
            return None
        import pandas as pd

        a, b = pd.Timestamp(first), pd.Timestamp(later)
        count = len(pd.date_range(min(a, b), max(a, b), freq=freq)) - 1
        return count if b >= a else -count
    except (ValueError, TypeError):
        return None
