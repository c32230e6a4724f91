"""The forecaster: no forecast sees the future, rolling-origin scores against hand computations,
baselines against statsmodels, the heads' intervals and losses against closed forms, and the run,
`rnnkit forecast` and `rnnkit.load` end to end."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.series import SeasonalProfile, SeriesSet, builtin_series, read_series
from rnnkit.data.series import Series as S
from rnnkit.models.forecaster import Forecaster
from rnnkit.train import baselines as B
from rnnkit.train.distributed import Dist
from rnnkit.train.forecaster import (
    DEFAULTS,
    ForecasterTask,
    baseline_scores,
    prepare,
    rolling_scores,
    run_forecaster,
)


def one_series(values, season=None) -> SeriesSet:
    v = np.asarray(values, dtype=float)
    return SeriesSet([S("y", v, np.zeros((len(v), 0)))], "test", season)


# ---- a forecast never sees the future --------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(window=12), dict(window=None),
                                dict(window=12, mode="autoregressive"),
                                dict(window=None, head="student", lags=5),
                                dict(window=12, mode="autoregressive", lags=4),
                                dict(window=12, mode="autoregressive", relative=True),
                                dict(window=None, relative=True),
                                dict(window=12, mode="autoregressive", members=3),
                                dict(window=None, head="student", members=2),
                                dict(window=12, difference=[0.1, 0.5]),
                                dict(window=12, mode="autoregressive", difference=[0.1, 0.5]),
                                dict(window=None, mode="autoregressive", members=2,
                                     difference=[-0.2, 2.0])])
def test_a_spike_after_the_origin_changes_no_forecast_before_it(kw):
    torch.manual_seed(0)
    m = Forecaster(1, horizon=4, hidden=8, **{"lags": 12, **kw})
    x = torch.randn(60, 1)
    spiked = x.clone()
    spiked[40] += 100.0
    before, after = list(range(11, 40)), [40, 45]
    a = m.forecast(x, before + after, 4, samples=20)
    b = m.forecast(spiked, before + after, 4, samples=20)
    n = len(before)
    for u, v in zip(a, b):
        assert torch.equal(u[:n], v[:n])  # origins up to 39 read nothing from step 40 on
        assert not torch.allclose(u[n:], v[n:])  # those after it do


@pytest.mark.parametrize("season", [None, 12])
def test_scaling_baselines_and_validation_read_the_past_only(monkeypatch, season):
    y = np.sin(np.arange(200) / 4) * 10 + 50 + np.random.default_rng(0).normal(size=200)
    if season:
        y += 5 * np.cos(2 * np.pi * np.arange(200) / season)
    spiked = y.copy()
    spiked[185:] += 1000.0  # only the test tail changes
    s = {**DEFAULTS, "horizon": 5, "arima": True, "hindsight": False}
    p, q = (prepare(one_series(v, season), dict(s)) for v in (y, spiked))
    assert p.scalers == q.scalers and p.mase == q.mase  # fitted before the tail
    if season:  # the seasonal profile too, and what the network reads before the tail
        assert p.profiles[0] is not None and np.array_equal(p.profiles[0].offsets,
                                                            q.profiles[0].offsets)
        np.testing.assert_array_equal(p.z[0][:185], q.z[0][:185])
    seen = []  # what the ARIMA order search is given: the part before the test tail only
    monkeypatch.setattr(B, "choose_arima", lambda v, season: seen.append(v.copy()) or
                        (B.ArimaChoice((1, 0, 0), (0, 0, 0, 0), 0.0), []))
    baseline_scores(q, s)
    assert len(seen) == 1 and np.array_equal(seen[0], y[:q.splits[0].val])
    torch.manual_seed(0)
    model = Forecaster(1, 5, hidden=8, window=p.window, lags=3)
    f, g = (ForecasterTask(d, model, {**s, "window": d.window}, Dist(), torch.device("cpu"))
            .forecasts(model, "val") for d in (p, q))
    for key in ("mean", "lower", "upper"):
        assert np.array_equal(f[key][0], g[key][0])
    if season:  # the profile is added back at each target's own position in the season
        np.testing.assert_allclose(p.level(0, [159], 5)[0],
                                   p.profiles[0].offsets[np.arange(160, 165) % season])
    # ARIMA from origins before the change, fitted before it: the same forecasts of y[:185]
    choice = B.ArimaChoice((2, 0, 0), (0, 0, 0, 0), 0.0)
    origins = list(range(170, 190))
    a, b = (B.arima_forecasts(v, 160, choice, origins, 5) for v in (y, spiked))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u[:15], v[:15])  # origins up to 184
        assert not np.allclose(u[15:], v[15:])


@pytest.mark.parametrize("stateful", [False, True])
def test_training_and_the_refit_never_read_the_test_tail(tmp_path, stateful):
    from rnnkit.train.checkpoint import load_checkpoint

    y = np.sin(np.arange(160) / 3) * 5 + 20 + np.random.default_rng(1).normal(size=160)
    spiked = y.copy()
    spiked[-16:] += 500.0  # the test tail only
    weights, runs = [], []
    for k, v in enumerate((y, spiked)):
        f = tmp_path / f"s{k}.csv"
        f.write_text("y\n" + "".join(f"{x}\n" for x in v))
        out = tmp_path / f"run{k}"
        runs.append(run_forecaster({"csv": str(f), "column": "y", "horizon": 3, "hidden": 4,
                                    "members": 2, "steps": 40, "samples": 10, "arima": False,
                                    "stateful": stateful, "out": str(out), "progress": False}))
        weights.append(load_checkpoint(out / "checkpoints" / "best.safetensors").model_state)
    assert runs[0]["refit"] and runs[0]["refit_steps"] == runs[1]["refit_steps"] >= 1
    assert runs[0]["val_rmse"] == runs[1]["val_rmse"]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_a_seasonal_profile_round_trips_and_finds_its_phase():
    rng = np.random.default_rng(3)
    t = np.arange(150)
    shape = np.array([4.0, 2.5, -1.0, -3.0, -2.5, 0.0, 1.0])
    y = 20 + 0.05 * t + shape[t % 7] + 0.3 * rng.normal(size=150)
    f = SeasonalProfile.fit(y[:100], 7)  # the training part only
    np.testing.assert_allclose(f.offsets, shape - shape.mean(), atol=0.25)
    for phase in (0, 3):
        np.testing.assert_allclose(f.inverse(f.apply(y, phase), phase), y, rtol=0, atol=1e-12)
    for cut in (0, 5, 13, 60):  # a history starting anywhere: its position in the season
        assert f.align(y[cut:]) == cut % 7
    assert SeasonalProfile.fit(y[:14], 7) is None  # under two seasons and a step
    s = {**DEFAULTS, "horizon": 5}
    assert prepare(one_series(y, 7), dict(s)).profiles[0] is not None  # on with a season
    assert prepare(one_series(y, 7), {**s, "deseason": False}).profiles[0] is None
    with pytest.raises(rnnkit.errors.UserError, match="no season"):
        prepare(one_series(y), {**s, "deseason": True})


@pytest.mark.parametrize("mode, head", [("direct", "gaussian"), ("autoregressive", "gaussian"),
                                        ("autoregressive", "point")])
def test_a_differenced_model_forecasts_levels_from_summed_differences(mode, head):
    torch.manual_seed(0)
    diff = [0.05, 0.3]
    m = Forecaster(1, 4, mode=mode, head=head, hidden=6, window=10, lags=3, members=2,
                   difference=diff)
    x = torch.cumsum(0.05 + 0.3 * torch.randn(40, 1), 0)
    origins = [9, 25, 39]
    mean, lower, upper = m.forecast(x, origins, 4, samples=400, seed=1)
    if head != "point":
        assert bool((lower < mean).all() and (mean < upper).all())
    # differences forget the level: the history shifted by c forecasts c more, to float error
    for u, v in zip((mean, lower, upper), m.forecast(x + 7.0, origins, 4, samples=400, seed=1)):
        torch.testing.assert_close(v, u + 7.0, rtol=0, atol=1e-4)
    # the levels are the origin's plus the forecast differences summed (the model without its
    # differencer forecasts those, from the differenced history)
    plain = Forecaster(**{**m.config, "difference": None})
    plain.load_state_dict(m.state_dict())
    d_mean = plain.forecast(m.differenced(x), origins, 4, samples=400, seed=1)[0]
    summed = d_mean.cumsum(-1) if mode == "autoregressive" else d_mean  # direct: trained so
    expect = x[origins, 0][:, None] + diff[0] * torch.arange(1, 5) + diff[1] * summed
    # sampled paths: their mean one step ahead is the head's own in d_mean, the draws' here
    tol = 0.03 if mode == "autoregressive" and head != "point" else 1e-4
    torch.testing.assert_close(mean, expect.float(), rtol=0, atol=tol)


def test_a_random_walk_is_differenced_and_its_drift_continued(tmp_path):
    rng = np.random.default_rng(4)
    y = 50 + np.cumsum(0.5 + 0.3 * rng.normal(size=200))
    # a unit root: differenced by default; --no-difference reads it relative to a window
    plain = {**DEFAULTS, "horizon": 6, "difference": False}
    assert prepare(one_series(y), plain).differencer is None and plain["relative"]
    stationary = {**DEFAULTS, "horizon": 6}
    ar = np.zeros(200)
    for t in range(1, 200):
        ar[t] = 0.5 * ar[t - 1] + rng.normal()
    assert prepare(one_series(10 + ar), stationary).differencer is None
    assert not (stationary["difference"] or stationary["relative"])
    s = {**DEFAULTS, "horizon": 6}
    p = prepare(one_series(y), s)
    assert s["difference"] and not s["relative"] and p.differencer is not None
    assert p.differencer.mean * p.scalers[0].std == pytest.approx(np.diff(y[:160]).mean())
    direct = Forecaster(1, 6, hidden=4, window=p.window, difference=[p.differencer.mean,
                                                                     p.differencer.std])
    task = ForecasterTask(p, direct, {**s, "mode": "direct"}, Dist(), torch.device("cpu"))
    z = p.z[0][:, 0]  # direct targets: h steps' summed (standardized) differences
    t, h = p.window - 1, np.arange(1, 7)
    np.testing.assert_allclose(task.y[t, 0].numpy(), (z[t + h] - z[t] - h * p.differencer.mean)
                               / p.differencer.std, atol=1e-5)
    f = tmp_path / "walk.csv"
    f.write_text("y\n" + "".join(f"{v}\n" for v in y))
    out = tmp_path / "run"
    summary = run_forecaster({"csv": str(f), "column": "y", "horizon": 6, "hidden": 8,
                              "members": 2, "steps": 60, "samples": 100, "arima": False,
                              "out": str(out), "progress": False})
    assert summary["difference"] and math.isfinite(summary["test_rmse_h6"])
    fc = rnnkit.load(out).forecast(y, 6)  # past the training range: the drift goes on
    assert np.all(np.diff(np.r_[y[-1], fc.mean]) > 0.2)
    assert bool(np.all(fc.lower < fc.mean) and np.all(fc.mean < fc.upper))
    assert np.all(np.diff(fc.upper - fc.lower) > 0)  # summed paths: wider further ahead


# ---- rolling-origin scores -------------------------------------------------------------------

def test_naive_rolling_scores_equal_a_hand_computation():
    y = np.array([3.0, 5.0, 4.0, 6.0, 8.0, 7.0, 9.0, 12.0, 10.0, 11.0])
    s = {**DEFAULTS, "horizon": 2, "arima": False, "val_fraction": 0.2, "test_fraction": 0.3,
         "window": 2}
    p = prepare(one_series(y), s)
    assert (p.splits[0].val, p.splits[0].end) == (7, 10)  # test: y[7], y[8], y[9]
    out, _ = baseline_scores(p, s)
    # origins 6, 7, 8. h=1: 9->12, 12->10, 10->11; h=2: 9->10, 12->11 (y[10] does not exist)
    e1, e2 = np.array([3.0, -2.0, 1.0]), np.array([1.0, -1.0])
    scale = np.mean(np.abs(np.diff(y[:7])))  # in-sample naive MAE before the test tail
    assert out["test_naive_mae_h1"] == pytest.approx(2.0)
    assert out["test_naive_rmse_h1"] == pytest.approx(math.sqrt(np.mean(e1 ** 2)))
    assert out["test_naive_rmse_h2"] == pytest.approx(1.0)
    assert out["test_naive_mase_h1"] == pytest.approx(2.0 / scale)
    assert out["test_naive_mase_h2"] == pytest.approx(np.mean(np.abs(e2)) / scale)
    assert out["test_naive_rmse"] == pytest.approx((math.sqrt(14 / 3) + 1.0) / 2)


def test_rolling_scores_match_a_loop_over_many_inputs():
    rng = np.random.default_rng(1)
    for _ in range(20):
        k, n, H = rng.integers(1, 4), rng.integers(2, 9), rng.integers(1, 6)
        truth = [rng.normal(size=(n, H)) for _ in range(k)]
        for t in truth:
            t[rng.random((n, H)) < 0.2] = np.nan
            t[:, 0] = rng.normal(size=n)
        mean = [rng.normal(size=(n, H)) for _ in range(k)]
        lower = [m - rng.random((n, H)) for m in mean]
        upper = [m + rng.random((n, H)) for m in mean]
        scale = list(rng.random(k) + 0.5)
        got = rolling_scores(truth, mean, scale, lower, upper)
        for h in range(H):
            pairs = [(t[i, h], m[i, h], lo[i, h], up[i, h], s)
                     for t, m, lo, up, s in zip(truth, mean, lower, upper, scale)
                     for i in range(n) if not np.isnan(t[i, h])]
            if not pairs:
                assert f"rmse_h{h + 1}" not in got
                continue
            errs = [m - t for t, m, *_ in pairs]
            assert got[f"rmse_h{h + 1}"] == pytest.approx(math.sqrt(np.mean(np.square(errs))))
            assert got[f"mase_h{h + 1}"] == pytest.approx(
                np.mean([abs(m - t) / s for t, m, _, _, s in pairs]))
            assert got[f"coverage_h{h + 1}"] == pytest.approx(
                np.mean([lo <= t <= up for t, _, lo, up, _ in pairs]))


def test_seasonal_naive_matches_a_loop():
    y = np.arange(40.0) ** 1.5
    for m in (2, 4, 7):
        got = B.seasonal_naive(y, [20, 25], 9, m)
        for i, o in enumerate((20, 25)):
            for h in range(1, 10):
                back = o + h - m
                while back > o:
                    back -= m
                assert got[i, h - 1] == y[back]


def test_arima_forecasts_equal_statsmodels_from_the_last_origin():
    from statsmodels.tsa.arima.model import ARIMA

    y = builtin_series("sunspots").series[0].values
    choice = B.ArimaChoice((3, 0, 1), (0, 0, 0, 0), 0.0)
    mean, lower, upper = B.arima_forecasts(y, 280, choice, [279], 5)
    ref = ARIMA(y[:280], order=(3, 0, 1), trend="c").fit().get_forecast(5)
    np.testing.assert_allclose(mean[0], ref.predicted_mean, rtol=1e-4)
    np.testing.assert_allclose(lower[0], ref.conf_int(alpha=0.1)[:, 0], rtol=1e-4)


def test_arima_choice_is_the_lowest_aic_of_its_grid():
    y = builtin_series("sunspots").series[0].values[:150]
    best, tried = B.choose_arima(y, None)
    assert best.aic == min(c.aic for c in tried) and len(tried) >= 15
    d, _ = B.differences(y)
    assert {c.order[1] for c in tried} == {d}  # one d, by the unit-root test (AIC cannot
    assert {c.order[0] for c in tried} >= set(range(11))  # compare differenced series)


# ---- heads -----------------------------------------------------------------------------------

def test_intervals_and_losses_match_scipy():
    torch.manual_seed(0)
    p = torch.randn(5, 3, 3)
    for head in ("gaussian", "student"):
        m = Forecaster(1, 3, head=head, hidden=4)
        dist = m.distribution(p[..., :3 if head == "student" else 2])
        mean, lower, upper = m._interval(p[..., :3 if head == "student" else 2], 0.9)
        loc, scale = dist.loc.double().numpy(), dist.scale.double().numpy()
        if head == "gaussian":
            q = stats.norm.ppf(0.95)
            nll = -stats.norm.logpdf(0.3, loc, scale)
        else:
            df = dist.df.double().numpy()
            q = stats.t.ppf(0.95, df)
            nll = -stats.t.logpdf(0.3, df, loc, scale)
        np.testing.assert_allclose(upper.numpy(), loc + q * scale, rtol=1e-5)
        np.testing.assert_allclose(lower.numpy(), loc - q * scale, rtol=1e-5)
        loss = m.loss(p[..., :3 if head == "student" else 2], torch.full((5, 3), 0.3),
                      torch.ones(5, 3))
        assert float(loss) == pytest.approx(nll.mean(), rel=1e-5)


def test_autoregressive_samples_cover_their_own_distribution():
    torch.manual_seed(0)
    m = Forecaster(1, 1, mode="autoregressive", hidden=4, window=5)
    direct = Forecaster(1, 1, hidden=4, window=5)
    direct.load_state_dict(m.state_dict())
    # one step ahead, sampled quantiles approach the closed-form interval of the same model
    x = torch.randn(20, 1)
    s_mean, s_lo, s_up = m.forecast(x, [19], 1, samples=20000)
    c_mean, c_lo, c_up = direct.forecast(x, [19], 1)
    assert float(s_mean) == pytest.approx(float(c_mean), abs=0.05)
    assert float(s_lo) == pytest.approx(float(c_lo), abs=0.1)
    assert float(s_up) == pytest.approx(float(c_up), abs=0.1)


# ---- deep ensembles ----------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(head="student"), dict(head="point"),
                                dict(mode="autoregressive"),
                                dict(mode="autoregressive", head="point"),
                                dict(window=None, mode="autoregressive", relative=True)])
def test_an_ensemble_forecasts_the_mixture_of_its_members(kw):
    torch.manual_seed(0)
    kw = {"hidden": 6, "window": 8, "lags": 3, **kw}
    m = Forecaster(1, 3, members=3, **kw)
    x = torch.randn(40, 1)
    origins = [9, 20, 39]
    mean, lower, upper = m.forecast(x, origins, 3, level=0.8, samples=300, seed=5)
    each = [k.forecast(x, origins, 3, level=0.8, samples=300, seed=5 + 1000 * i)
            for i, k in enumerate(m.members)]
    torch.testing.assert_close(mean, torch.stack([e[0] for e in each]).mean(0))
    if kw.get("head") == "point":  # no distribution: the task's residual interval
        assert torch.equal(lower, mean) and torch.equal(upper, mean)
        return
    assert bool((lower < mean).all() and (mean < upper).all())
    lows, ups = torch.stack([e[1] for e in each]), torch.stack([e[2] for e in each])
    tol = 0.05 if kw.get("mode") == "autoregressive" else 1e-5  # sampled quantiles
    assert bool((lows.min(0).values - tol <= lower).all() and
                (lower <= lows.max(0).values + tol).all())
    assert bool((ups.min(0).values - tol <= upper).all() and
                (upper <= ups.max(0).values + tol).all())
    if kw.get("mode") != "autoregressive":  # the mixture's CDF is 0.1 and 0.9 at the bounds
        with torch.no_grad():
            p = torch.stack([k.eval()._predict(x, origins, 3, 1, 0)["params"]
                             for k in m.members])
        d = m.distribution(p.double())
        loc, scale = d.loc.numpy(), d.scale.numpy()
        cdf = (lambda v: stats.norm.cdf(v, loc, scale)) if kw.get("head") is None else \
            (lambda v: stats.t.cdf(v, d.df.numpy(), loc, scale))
        np.testing.assert_allclose(cdf(lower.double().numpy()[None]).mean(0), 0.1, atol=1e-4)
        np.testing.assert_allclose(cdf(upper.double().numpy()[None]).mean(0), 0.9, atol=1e-4)


def test_an_ensemble_trains_its_members_side_by_side():
    torch.manual_seed(0)
    m = Forecaster(1, 2, hidden=5, window=6, members=3, lags=2)
    x, y, mask = torch.randn(6, 4, 1), torch.randn(6, 4, 2), torch.ones(6, 4, 2)
    p, state = m(x)
    assert p.shape == (3, 6, 4, 2, 2) and len(state) == 3
    for k, member in enumerate(m.members):
        torch.testing.assert_close(p[k], member(x)[0])
    assert float(m.loss(p, y, mask).detach()) == pytest.approx(
        float(np.mean([float(k.loss(q, y, mask).detach()) for k, q in zip(m.members, p)])),
        rel=1e-6)
    starts = [k.head.weight.detach().clone() for k in m.members]
    assert not torch.equal(starts[0], starts[1])  # different random starts
    rebuilt = Forecaster(**m.config)
    rebuilt.load_state_dict(m.state_dict())
    history = torch.randn(20, 1)
    for u, v in zip(m.forecast(history, [9, 19], 2), rebuilt.forecast(history, [9, 19], 2)):
        assert torch.equal(u, v)


# ---- the run, end to end ---------------------------------------------------------------------

def write_sine(path, n=240, ids=("a",), exog=False):
    rows = ["id,t,y,x"]
    rng = np.random.default_rng(0)
    for k, name in enumerate(ids):
        for t in range(n):
            x = math.cos(t / 5)
            y = 10 + 3 * math.sin(2 * math.pi * t / 12 + k) + (2 * x if exog else 0) + \
                0.2 * rng.normal()
            rows.append(f"{name},{t},{y:.4f},{x:.4f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_run_forecast_and_load_end_to_end(tmp_path, capsys):
    f = write_sine(tmp_path / "sine.csv")
    out = tmp_path / "run"
    s = run_forecaster({"csv": str(f), "column": "y", "time_column": "t", "season": 12,
                        "horizon": 6, "hidden": 16, "steps": 150, "out": str(out),
                        "arima": False, "progress": False})
    assert s["status"] in ("completed", "early_stopped") and s["window"] == 24  # two seasons
    # the default: an ensemble, refit on training + validation for the epochs validation chose
    assert s["members"] == DEFAULTS["members"] > 1 and s["refit"] and s["refit_steps"] >= 1
    assert math.isfinite(s["test_unrefit_rmse_h1"]) and s["val_rmse"] == s["val_rmse"]
    for h in range(1, 7):
        for k in ("rmse", "mae", "mase", "coverage"):
            assert math.isfinite(s[f"test_{k}_h{h}"])
        assert f"test_naive_rmse_h{h}" in s and f"test_snaive_rmse_h{h}" in s
    assert s["test_rmse_h6"] < s["test_naive_rmse_h6"]  # it learned the season
    assert (out / "forecast.png").stat().st_size > 1000
    code = main(["forecast", str(out), "--csv", str(f), "--horizon", "6"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0 and [r["step"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r["time"] for r in rows] == [str(t) for t in range(240, 246)]
    history = read_series(f, "y").series[0].values
    loaded = rnnkit.load(out)
    assert len(loaded.model.members) == DEFAULTS["members"]
    fc = loaded.forecast(history, 6)
    np.testing.assert_allclose([float(r["mean"]) for r in rows], fc.mean, rtol=1e-5)
    # the seasonal profile (on: a season) is put back where the history sits in the season,
    # from its times or, without them, from its shape
    assert s["deseason"] and loaded.phase_of(None, "17", None, 1.0) == 17
    late = loaded.forecast(history[17:], 6, phase=17)
    np.testing.assert_allclose(loaded.forecast(history[17:], 6).mean, late.mean)
    assert not np.allclose(loaded.forecast(history[17:], 6, phase=0).mean, late.mean)
    assert all(float(r["lower"]) < float(r["mean"]) < float(r["upper"]) for r in rows)
    assert main(["forecast", str(out), "--csv", str(f), "--horizon", "9"]) == 0  # fed back
    assert len(capsys.readouterr().out.splitlines()) == 10
    assert main(["forecast", str(out), "--csv", str(f), "--horizon", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["forecasts"]) == 3


@pytest.mark.parametrize("extra", [
    {"stateful": True, "mode": "autoregressive", "head": "student"},
    {"exog": "x", "head": "point"},
])
def test_other_modes_train_and_forecast(tmp_path, capsys, extra):
    f = write_sine(tmp_path / "s.csv", n=160, ids=("a", "b"), exog=True)
    out = tmp_path / "run"
    s = run_forecaster({"csv": str(f), "column": "y", "time_column": "t", "id_column": "id",
                        "horizon": 4, "hidden": 8, "steps": 40, "arima": False, "samples": 50,
                        "out": str(out), "progress": False, **extra})
    assert s["series"] == 2 and math.isfinite(s["test_rmse_h4"])
    assert 0 <= s["test_coverage"] <= 1
    code = main(["forecast", str(out), "--csv", str(f), "--horizon", "4"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0 and len(rows) == 8 and {r["series"] for r in rows} == {"a", "b"}
    assert all(float(r["lower"]) <= float(r["upper"]) for r in rows)
    if s["mode"] == "direct":  # H outputs at once: no further
        assert main(["forecast", str(out), "--csv", str(f), "--horizon", "5"]) == 2
        assert "ask for at most 4" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_quick_prints_the_table(tmp_path, capsys):
    from rnnkit.bench.forecast import main as bench

    assert bench(["--quick", "--seeds", "2", "--datasets", "sunspots", "--no-hindsight",
                  "--compare", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "rnn, default (stateful)" in out and "rnn, stateless" in out
    assert "before the refit" in out and "ARIMA(9,0,0) (AIC)" in out
    rows = json.loads((tmp_path / "b.json").read_text())["datasets"]["sunspots"]["table"]
    assert rows["arima"]["rmse_h1"][0] == pytest.approx(17.3, abs=0.05)  # issue 13's number
    assert rows["naive"]["rmse_h1"][0] == pytest.approx(32.5, abs=0.05)


def test_the_plot_reads_the_series_own_times():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnkit.train.forecaster import time_ticks

    ax = plt.subplots()[1]
    ax.plot(range(40), range(40))
    times = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(40)]
    time_ticks(ax, times, 0, 40)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and all(label in times for label in labels) and ax.get_xlabel() == "time"
    ax2 = plt.subplots()[1]
    ax2.plot(range(5), range(5))
    time_ticks(ax2, None, 0, 5)  # no time column: steps
    assert ax2.get_xlabel() == "step"
    plt.close("all")



def test_several_series_name_their_arima_orders_by_count_not_as_a_list():
    from rnnkit.cli.train_forecaster import report
    from rnnkit.train.forecaster import _baseline_line, arima_label

    assert arima_label("ARIMA(9,0,0)") == "ARIMA(9,0,0)"
    orders = ["ARIMA(1,1,1)(0,1,1)12", "ARIMA(1,0,0)(1,1,1)12"]
    assert arima_label(orders) == "ARIMA, one order per series (2)"
    s = {"horizon": 2, "season": None, "head": "gaussian", "mode": "direct", "cell": "lstm",
         "members": 1, "out": "run", "status": "completed", "steps": 5, "train_seconds": 1.0,
         "arima_order": orders, **{f"test_{k}rmse_h{h}": 1.0 for k in ("", "arima_")
                                   for h in (1, 2)}}
    text = report(s) + _baseline_line(s)
    assert "[" not in text and text.count("ARIMA, one order per series (2)") == 2
