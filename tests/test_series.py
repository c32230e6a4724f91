"""Reading, checking, splitting, scaling and windowing series (rnnkit.data.series), and the
one-line errors the forecaster's CLI gives for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.data.series import (
    Differencer,
    Scaler,
    builtin_series,
    default_window,
    read_series,
    split_tail,
    training_windows,
)
from rnnkit.errors import UserError


def write(tmp_path, text: str, name: str = "s.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


def monthly(n: int, start: str = "2000-01", gap_at: int | None = None) -> list[str]:
    import pandas as pd

    stamps = list(pd.date_range(start, periods=n + (gap_at is not None), freq="MS"))
    if gap_at is not None:
        del stamps[gap_at]
    return [t.strftime("%Y-%m") for t in stamps]


def test_read_sorts_by_time_and_reads_the_season(tmp_path):
    f = write(tmp_path, "t,y,x\n2000-03,3,0.3\n2000-01,1,0.1\n2000-02,2,0.2\n")
    s = read_series(f, "y", "t", ["x"])
    assert s.series[0].values.tolist() == [1.0, 2.0, 3.0]
    assert s.series[0].exog[:, 0].tolist() == [0.1, 0.2, 0.3]
    assert s.season == 12 and s.freq == "MS" and s.exog_names == ["x"]


def test_id_column_gives_one_series_each(tmp_path):
    rows = [f"{k},{t},{v}" for k in ("a", "b") for t, v in zip(range(5), range(5))]
    s = read_series(write(tmp_path, "id,t,y\n" + "\n".join(rows) + "\n"), "y", "t",
                    id_column="id")
    assert [x.name for x in s.series] == ["a", "b"] and s.step == 1.0
    assert all(len(x) == 5 for x in s.series)


@pytest.mark.parametrize("text, column, time, words", [
    ("t,y\n1,2\n2,3\n", "sales", None, "no column 'sales'"),
    ("t,y\n1,2\n2,abc\n3,4\n", "y", None, "line 3: 'abc' in column 'y' is not a number"),
    ("t,y\n1,2\n2,\n3,4\n", "y", None, "line 3: column 'y' is empty"),
    ("t,y\n1,2\n2,nan\n3,4\n", "y", None, "line 3: column 'y' is nan"),
    ("t,y\n1,2\n2,3\n4,4\n5,5\n", "y", "t", "line 4: time 4 follows 2"),
    ("t,y\n1,2\n1,3\n2,4\n3,5\n", "y", "t", "a gap or a repeated time"),
])
def test_bad_input_is_one_clear_error(tmp_path, text, column, time, words):
    with pytest.raises(UserError, match=words):
        read_series(write(tmp_path, text), column, time)


def test_a_missing_month_is_named(tmp_path):
    times = monthly(12, gap_at=5)
    text = "month,y\n" + "\n".join(f"{t},{i}" for i, t in enumerate(times)) + "\n"
    with pytest.raises(UserError, match="2000-07-01 follows 2000-05-01.*expected 2000-06-01"):
        read_series(write(tmp_path, text), "y", "month")


def test_split_is_at_the_tail():
    for n in (20, 100, 309, 1234):
        sp = split_tail(n, 0.1, 0.2)
        assert sp.end == n and sp.end - sp.val == round(0.2 * n)
        assert sp.val - sp.train == round(0.1 * n)


def test_scaler_is_fitted_on_the_training_part():
    y = np.arange(100.0)
    s = Scaler.fit(y[:60])
    assert s.mean == pytest.approx(np.mean(y[:60])) and s.std == pytest.approx(np.std(y[:60]))
    assert np.allclose(s.inverse(s.apply(y)), y)


def test_differences_round_trip_and_read_the_past_only():
    rng = np.random.default_rng(2)
    z = np.cumsum(0.3 + rng.normal(size=80))  # a random walk with drift
    f = Differencer.fit([z[:50]])  # the training part only
    steps = np.diff(z[:50])
    assert f.mean == pytest.approx(steps.mean()) and f.std == pytest.approx(steps.std())
    d = f.apply(z)
    assert d[0] == 0.0 and np.allclose(d[1:], (np.diff(z) - f.mean) / f.std)
    # transform -> inverse: from each origin, the summed differences give back the levels
    origins = np.array([0, 10, 49, 70])
    summed = np.stack([np.cumsum(d[o + 1:o + 7]) for o in origins])
    np.testing.assert_allclose(f.integrate(z[origins], summed),
                               np.stack([z[o + 1:o + 7] for o in origins]), atol=1e-10)
    spiked = z.copy()
    spiked[60] += 100.0  # after the origin: nothing before it changes
    assert np.array_equal(f.apply(spiked)[:60], d[:60])
    assert Differencer.fit([spiked[:50]]) == f


@pytest.mark.parametrize("end, window, outputs", [(12, 4, 3), (9, 8, 1), (30, 5, 7)])
def test_training_windows_match_a_loop(end, window, outputs):
    z = np.random.default_rng(0).normal(size=(end + 5, 2))
    x, y, m = training_windows(z, end, window, outputs)
    assert x.shape[1] == end - window
    for n in range(x.shape[1]):
        for t in range(window):
            assert np.array_equal(x[t, n], z[n + t])
            for h in range(outputs):
                inside = n + t + h + 1 < end  # a target never comes from past the part
                assert m[t, n, h] == inside
                assert y[t, n, h] == (z[n + t + h + 1, 0] if inside else 0.0)


def test_builtin_series():
    sun = builtin_series("sunspots")
    assert len(sun.series[0]) == 309 and sun.series[0].times[0] == "1700"
    co2 = builtin_series("co2")
    assert len(co2.series[0]) == 526 and co2.season == 12
    assert np.isfinite(co2.series[0].values).all()
    assert len(builtin_series("elnino").series[0]) == 732
    assert default_window(247, None) == 30


# ---- the CLI: one line, exit status 2, nothing written ---------------------------------------

def cli_error(capsys, tmp_path, *argv) -> str:
    out = tmp_path / "run"
    code = main(["train", "forecaster", *argv, "--out", str(out), "--steps", "1",
                 "--no-progress", "--no-arima"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rnnkit: error:") and "\n" not in err, err
    assert not out.exists()
    return err


def series_csv(tmp_path, n: int, bad: str | None = None, name: str = "s.csv") -> str:
    values = [f"{np.sin(i / 3):.4f}" for i in range(n)]
    if bad is not None:
        values[n // 2] = bad
    return str(write(tmp_path, "t,y\n" + "\n".join(f"{i},{v}" for i, v in
                                                  enumerate(values)) + "\n", name))


def test_cli_bad_input_exits_2(capsys, tmp_path):
    f = series_csv(tmp_path, 200)
    assert "no column 'sales'" in cli_error(capsys, tmp_path, "--csv", f, "--column", "sales")
    for bad, words in (("x1", "is not a number"), ("", "is empty"), ("NaN", "is NaN")):
        g = series_csv(tmp_path, 200, bad, f"bad{len(bad)}{bad[:1]}.csv")
        assert words in cli_error(capsys, tmp_path, "--csv", g, "--column", "y")
    assert "too short for a window of 50" in cli_error(
        capsys, tmp_path, "--csv", f, "--column", "y", "--window", "50",
        "--test-fraction", "0.4", "--val-fraction", "0.4")
    assert "longer than the held-out test tail of 20" in cli_error(
        capsys, tmp_path, "--csv", f, "--column", "y", "--horizon", "21")
    gap = write(tmp_path, "t,y\n" + "\n".join(f"{i if i < 50 else i + 1},{i}"
                                              for i in range(100)) + "\n", "gap.csv")
    assert "a gap" in cli_error(capsys, tmp_path, "--csv", str(gap), "--column", "y",
                                "--time-column", "t")
    assert "--csv needs --column" in cli_error(capsys, tmp_path, "--csv", f)
    assert "autoregressive" in cli_error(capsys, tmp_path, "--csv", f, "--column", "y",
                                         "--exog", "t", "--mode", "autoregressive")
