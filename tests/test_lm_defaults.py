"""Defaults that fit the text and the budget: sizes chosen from the training text (and
recorded), evaluation points spread over any budget, the best checkpoint kept, and closing
warnings when a run ends above the n-gram baseline or memorised its text."""

import json
import math

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.train import lm as lm_mod
from rnnkit.train import trainer as trainer_mod
from rnnkit.train.lm import DEFAULTS, closing_warnings, run_lm
from rnnkit.train.sizing import (
    MIN_STEPS,
    SHORT_BUDGET_LR,
    SHORT_BUDGET_STEPS,
    SIZED,
    SMALL_BATCH_GAIN,
    SMALL_TEXT_BATCH,
    TIERS,
    WIDTHS,
    fill_sizes,
    fit_width,
    size_for,
    steps_in,
)

PROSE = ("It is a truth universally acknowledged, that a single man in possession of a good "
         "fortune, must be in want of a wife.\nHowever little known the feelings or views of "
         "such a man may be on his first entering a neighbourhood, this truth is so well "
         "fixed in the minds of the surrounding families.\n")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_tiers_grow_with_the_text_and_keep_the_main_job():
    """More text: never a smaller model, more dropout or more weight decay; the 1.8 M-character
    main job keeps hidden 512, embed 128, dropout 0.1, weight decay 0.01."""
    sizes = [size_for(n) for n in (10_000, 100_000, 300_000, 800_000, 1_800_000, 10**8)]
    for small, big in zip(sizes, sizes[1:]):
        assert big["hidden"] >= small["hidden"] and big["dropout"] <= small["dropout"]
        assert big["weight_decay"] <= small["weight_decay"]
    assert size_for(1_800_000) == {"hidden": 512, "embed": 128, "dropout": 0.1, "lr": 3e-3,
                                   "weight_decay": 0.01}
    limits = [limit for limit, _ in TIERS]
    assert limits == sorted(limits) and math.isinf(limits[-1])


def test_fill_sizes_fills_only_what_the_user_left_open():
    s = {"hidden": 100, "embed": None, "dropout": None, "lr": 0.01, "weight_decay": 0.05,
         "tie_weights": False}
    assert fill_sizes(s, 50_000) == ["embed", "dropout"]
    assert s["weight_decay"] == 0.05
    assert s["hidden"] == 100 and s["dropout"] == size_for(50_000)["dropout"]
    tied = {"hidden": None, "embed": None, "dropout": 0.0, "lr": 0.01, "tie_weights": True}
    fill_sizes(tied, 50_000)
    assert tied["embed"] == tied["hidden"] == size_for(50_000)["hidden"]  # tying needs equal
    assert all(DEFAULTS[k] is None for k in SIZED)


def _small_run(out, **kw):
    return {"dataset": "hello", "max_chars": 400, "batch_size": 4, "seq_len": 16,
            "steps": 32, "warmup": 2, "sample_length": 5, "progress": False,
            "out": str(out), **kw}


def test_config_records_the_sizes_chosen_for_the_text(tmp_path, capsys):
    summary = run_lm(_small_run(tmp_path / "a", hidden=24, lr=0.02))
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    expected = size_for(summary["train_chars"])
    assert cfg["hidden"] == 24 and cfg["model"]["hidden"] == 24  # the user's choice stays
    assert cfg["lr"] == 0.02
    assert ((cfg["embed"], cfg["dropout"], cfg["weight_decay"])
            == (expected["embed"], expected["dropout"], expected["weight_decay"]))
    assert cfg["sized_from_text"] == {"train_chars": summary["train_chars"],
                                      "settings": ["embed", "dropout", "weight_decay"]}
    assert "for that much text: embed" in capsys.readouterr().err


def test_a_step_budget_is_evaluated_evenly_and_the_best_checkpoint_kept(tmp_path):
    """No --eval-every: EVALS_PER_RUN evaluation points over the steps (a short run and a
    long one alike), and the reported val score is the best point's."""
    out = tmp_path / "r"
    summary = run_lm(_small_run(out, hidden=16, embed=8, steps=48))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if "val_bpc" in r]
    assert evals == list(range(3, 49, 3))  # ceil(48 / 16) = 3
    best = min((r for r in rows if "val_bpc" in r), key=lambda r: r["val_loss"])
    assert summary["best_step"] == best["step"]


def test_a_time_budget_is_evaluated_many_times(tmp_path, monkeypatch):
    """Time the only budget: evaluation points follow the clock (about EVALS_PER_RUN of them),
    never a fixed step count that a short budget would never reach."""
    monkeypatch.setattr(trainer_mod, "MAX_EVAL_SHARE", 1.0)  # tiny model: cost does not matter
    out = tmp_path / "t"
    run_lm(_small_run(out, hidden=16, embed=8, steps=None, max_time=1.5))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    n_evals = sum("val_bpc" in r for r in rows)
    assert 8 <= n_evals <= trainer_mod.EVALS_PER_RUN + 1


def _summary(**kw):
    return {"status": "completed", "epochs": 40.0, "train_chars": 30_000, "val_bpc": 2.6,
            "val_ngram_bpc": 2.4, **kw}


SETTINGS = {"dropout": 0.3, "hidden": 256, "ngram_order": 5}


def test_closing_warnings_name_memorising_and_the_baseline():
    curve = [{"step": 100 * i, "val_bpc": b, "val_loss": b * 0.69}
             for i, b in enumerate([3.0, 2.5, 2.45, 2.6, 2.7])]
    memorised, baseline = closing_warnings(_summary(), [*curve, {"loss": 1.2}], SETTINGS)
    assert "saw its 30,000 training characters 40 times" in memorised
    assert "worse after step 200 (bpc 2.450 -> 2.700)" in memorised
    assert "--dropout 0.45" in memorised and "--hidden 128" in memorised
    assert "above the 5-gram baseline's 2.400" in baseline
    # validation noisy early on, training loss not below it: not memorising
    early = closing_warnings(_summary(), [*curve, {"loss": 2.0}], SETTINGS)
    assert len(early) == 1 and "above the 5-gram" in early[0] and "memorised" not in early[0]
    # still improving at the end, above the baseline: a longer budget
    rising = [{"step": i, "val_bpc": 3.0 - 0.1 * i, "val_loss": 2.0 - 0.07 * i}
              for i in range(4)]
    (only,) = closing_warnings(_summary(epochs=2.0), rising, SETTINGS)
    assert "longer --max-time" in only
    # the final evaluation a hair above the one just before it (cmake-manual.rst, 150 s: best
    # 2.07390 at step 2,637, 2.07391 at 2,638): still improving, not a dropout problem
    tail = [*rising, {"step": 4, "val_bpc": 2.7 + 1e-5, "val_loss": 1.79}]
    (only,) = closing_warnings(_summary(epochs=2.0), tail, SETTINGS)
    assert "longer --max-time" in only and "--dropout" not in only
    # below the baseline, no memorising: nothing to say
    assert closing_warnings(_summary(val_bpc=2.3), rising, SETTINGS) == []
    assert closing_warnings(_summary(status="interrupted"), curve, SETTINGS) == []


def test_a_memorised_small_text_says_so_on_stdout_and_in_summary(tmp_path, capsys):
    """A big model, no dropout, a constant rate, one short text seen 100+ times over: the
    closing lines say what happened and what to try (and summary.json keeps them)."""
    text = tmp_path / "prose.txt"
    text.write_text(PROSE * 2)
    out = tmp_path / "m"
    rc = main(["train", "lm", "--text", str(text), "--hidden", "96", "--embed", "32",
               "--dropout", "0", "--steps", "300", "--lr", "0.01", "--schedule", "constant",
               "--batch-size", "4", "--seq-len", "32", "--eval-every", "25",
               "--sample-length", "5", "--no-progress", "--out", str(out)])
    assert rc == 0
    stdout = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert any("memorised the text" in w for w in summary["warnings"])
    assert "note:       the model saw its" in stdout


def test_a_time_budget_ends_its_warmup_with_its_share_of_the_clock(tmp_path):
    """--warmup counts steps, which a time budget cannot foresee: on a slow machine (here a
    warmup far longer than the run) the rate still reaches the schedule after 5 % of the time."""
    out = tmp_path / "w"
    run_lm(_small_run(out, hidden=16, embed=8, steps=None, max_time=1.0, warmup=10**6,
                      lr=0.01, eval_every=10**6))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    mid = [r["lr"] for r in rows if "lr" in r and 0.1 <= r["elapsed"] <= 0.5]
    assert mid and min(mid) > 0.005  # the cosine's rate, not step / 10**6 of it


def _quadratic(seconds_at_256):
    """A step's seconds growing with the square of the width, as an LSTM's products do."""
    calls = []

    def seconds(width):
        calls.append(width)
        return seconds_at_256 * (width / 256) ** 2
    return seconds, calls


@pytest.mark.parametrize("per_step, budget, expected", [
    (0.06, 150, 256),    # a fast machine: 2,375 steps, the tier's width stays (timed once)
    (0.25, 150, 192),    # a quarter as fast: 570 steps at 256, 1,013 at 192
    (0.25, 30, 128),     # a short budget too: no width reaches MIN_STEPS, the narrowest
    (0.25, 600, 256),    # ... and a long one keeps the tier's
])
def test_fit_width_keeps_the_widest_the_budget_trains(per_step, budget, expected):
    seconds, calls = _quadratic(per_step)
    s = {"hidden": 256, "embed": 64, "tie_weights": False}
    got = fit_width(s, budget, seconds)
    assert s["hidden"] == got["hidden"] == expected and s["embed"] == 64
    assert calls == [w for w in (256, 192, 128) if w >= expected]  # widest first, stops there
    assert got["seconds_per_step"] == {w: per_step * (w / 256) ** 2 for w in calls}
    assert got["steps"] == int(budget * 0.95 / seconds(expected))
    if expected != 128:
        assert got["steps"] >= MIN_STEPS
    tied = {"hidden": 512, "embed": 512, "tie_weights": True}
    fit_width(tied, 150, _quadratic(0.25)[0])
    assert tied["embed"] == tied["hidden"] < 512 and tied["hidden"] in WIDTHS


def test_a_time_budget_narrows_the_sized_width_and_says_so(tmp_path, capsys, monkeypatch):
    """Time the only budget, the width left to the defaults: the steps are timed on this
    machine and a narrower model chosen where the budget is short for the tier's; recorded in
    config.json, with the higher learning rate of a short budget. A width the user gives, or a
    step budget, is never timed; a learning rate the user gives is kept."""
    timed = []

    def seconds(s, vocab, width, device):
        timed.append(width)
        return 10.0 * (width / 256) ** 2  # a slow machine: 1.0 s budget buys few steps

    monkeypatch.setattr(lm_mod, "seconds_per_step", seconds)
    lrs = _trainer_lrs(monkeypatch, lm_mod)
    run_lm(_small_run(tmp_path / "a", steps=None, max_time=1.0, eval_every=10**6))
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert timed == [256, 192, 128] and cfg["hidden"] == cfg["model"]["hidden"] == 128
    budget = cfg["sized_from_text"]["budget"]
    assert budget["hidden"] == 128 and budget["budget"] == 1.0
    assert cfg["lr"] == budget["lr"] == SHORT_BUDGET_LR == lrs[0]  # what it trained at
    assert "batch" not in budget  # the batch size given (4) is kept
    assert set(budget["seconds_per_step"]) == {"256", "192", "128"}  # JSON keys
    assert f"hidden 128 rather than 256, lr {SHORT_BUDGET_LR:g}" in capsys.readouterr().err
    run_lm(_small_run(tmp_path / "d", steps=None, max_time=1.0, eval_every=10**6, lr=2e-3))
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    assert cfg["hidden"] == 128 and cfg["lr"] == 2e-3
    assert "lr" not in cfg["sized_from_text"]["budget"]
    timed.clear()
    run_lm(_small_run(tmp_path / "b", hidden=24, steps=None, max_time=0.5))
    run_lm(_small_run(tmp_path / "c", steps=3))
    assert timed == []
    assert "budget" not in json.loads((tmp_path / "c" / "config.json").read_text()
                                      )["sized_from_text"]


def _trainer_lrs(monkeypatch, module):
    """The learning rates the Trainer of ``module``'s runs is given, in order."""
    seen = []

    class Spy(module.Trainer):
        def __init__(self, model, task, settings, *args, **kw):
            seen.append(settings.lr)
            super().__init__(model, task, settings, *args, **kw)

    monkeypatch.setattr(module, "Trainer", Spy)
    return seen


def test_fit_width_takes_smaller_batches_before_a_narrower_width():
    """A budget short for the tier's width at 32 rows: 8 rows a step first (the same tokens a
    second in four times the steps), and a narrower width only where even those are few."""
    calls = []

    def seconds(width):  # a step's time in proportion to its rows and the width squared
        calls.append((width, s["batch_size"]))
        return 0.25 * s["batch_size"] / 32 * (width / 256) ** 2

    s = {"hidden": 256, "embed": 64, "tie_weights": False, "batch_size": 32}
    got = fit_width(s, 150, seconds, SMALL_TEXT_BATCH)
    assert (s["hidden"], s["batch_size"]) == (256, 8) and calls == [(256, 32), (256, 8)]
    assert got["batch"] == {"from": 32, "to": 8, "steps": 570} and got["steps"] == 2280
    calls.clear()
    s = {"hidden": 256, "embed": 64, "tie_weights": False, "batch_size": 32}
    got = fit_width(s, 40, seconds, SMALL_TEXT_BATCH)  # 608 steps at 8 rows: narrower too
    assert (s["hidden"], s["batch_size"]) == (128, 8) and got["steps"] >= SHORT_BUDGET_STEPS
    assert calls == [(256, 32), (256, 8), (192, 8), (128, 8)]  # 192: 1,080 steps, too few
    s = {"hidden": 256, "embed": 64, "tie_weights": False, "batch_size": 32}
    got = fit_width(s, 600, seconds, SMALL_TEXT_BATCH)  # 2,280 steps at 32: 8 rows all the same
    assert got["batch"] == {"from": 32, "to": 8, "steps": 2280} and s["batch_size"] == 8


def test_fit_width_keeps_the_batch_where_fewer_rows_buy_few_more_steps():
    """Where a step's time hardly depends on its rows (a GPU), 8 rows would only read less: the
    batch stays, however short the budget, and the width narrows as before; the gain is
    ``SMALL_BATCH_GAIN`` times the steps, not a little less."""
    for gain, taken in ((SMALL_BATCH_GAIN * 0.99, False), (SMALL_BATCH_GAIN, True)):
        s = {"hidden": 256, "embed": 64, "tie_weights": False, "batch_size": 32}

        def seconds(width, s=s, gain=gain):
            per_row = 1 if s["batch_size"] == 32 else 1 / gain
            return 0.25 * per_row * (width / 256) ** 2

        got = fit_width(s, 150, seconds, SMALL_TEXT_BATCH)
        assert ("batch" in got) is taken and s["batch_size"] == (8 if taken else 32)
        assert s["hidden"] == 192  # 256: 570 steps at 32 rows, 855 at 8; 192: 1,013, 1,520


def test_a_short_budget_takes_smaller_batches_and_the_trainer_its_rate(tmp_path, capsys,
                                                                       monkeypatch):
    """The batch left to the defaults and a budget short for 32 rows a step: 8 rows at the
    tier's width, the short budget's learning rate (given to the Trainer, not only written in
    config.json), and a line that says so; a batch size the user gives is kept."""
    timed = []

    def seconds(s, vocab, width, device):
        timed.append((width, s["batch_size"]))
        return 0.0016 * s["batch_size"] / 32 * (width / 256) ** 2  # 593 steps in 1 s at 32

    monkeypatch.setattr(lm_mod, "seconds_per_step", seconds)
    lrs = _trainer_lrs(monkeypatch, lm_mod)
    given = {k: v for k, v in _small_run(tmp_path / "a").items() if k != "batch_size"}
    run_lm({**given, "steps": None, "max_time": 1.0, "eval_every": 10**6})
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert timed == [(256, 32), (256, 8)]
    assert (cfg["batch_size"], cfg["hidden"], cfg["lr"]) == (8, 256, SHORT_BUDGET_LR)
    at_32, at_8 = steps_in(1.0, 0.0016), steps_in(1.0, 0.0004)
    assert cfg["sized_from_text"]["budget"]["batch"] == {"from": 32, "to": 8, "steps": at_32}
    assert lrs == [SHORT_BUDGET_LR]
    err = capsys.readouterr().err
    assert f"batch size 8 rather than 32, lr {SHORT_BUDGET_LR:g}: on this machine" in err
    assert f"{at_8:,} steps, {at_32:,} at 32 rows" in err
    timed.clear()
    run_lm({**given, "steps": None, "max_time": 1.0, "eval_every": 10**6, "batch_size": 32,
            "out": str(tmp_path / "b")})
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert timed[0] == (256, 32) and {b for _, b in timed} == {32}  # the user's batch stays
    assert cfg["batch_size"] == 32 and cfg["hidden"] < 256 and lrs[-1] == SHORT_BUDGET_LR


def test_seconds_per_step_times_the_runs_model():
    s = {**DEFAULTS, "embed": 8, "dropout": 0.0, "batch_size": 2, "seq_len": 8}
    before = torch.random.get_rng_state()
    assert 0 < lm_mod.seconds_per_step(s, 11, 16, torch.device("cpu"), steps=2) < 5
    assert not torch.equal(before, torch.random.get_rng_state())  # (fit_to_budget forks it)
