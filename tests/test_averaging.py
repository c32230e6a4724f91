"""Weight averaging: the moving average against a closed form and torch's own EMA, and the
Trainer evaluating, keeping and resuming it."""

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from rnnkit.errors import UserError
from rnnkit.train.averaging import SHARE, decay_at, weight_average
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.rundir import RunDir
from rnnkit.train.trainer import Trainer, TrainSettings
from test_trainer import Toy, _fit


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_average_follows_its_recurrence(decay):
    """Over random weights, the average is w_avg = d_n w_avg + (1 - d_n) w, in float64 by
    hand, starting from the first weights."""
    torch.manual_seed(0)
    net = nn.Linear(4, 3).double()
    avg = weight_average(net, decay)
    ref = None
    for n in range(40):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p))
        avg.update_parameters(net)
        w = torch.cat([p.detach().flatten() for p in net.parameters()])
        ref = w.clone() if ref is None else decay_at(decay, n) * ref + (1 - decay_at(decay, n)) * w
    got = torch.cat([p.detach().flatten() for p in avg.module.parameters()])
    assert torch.allclose(got, ref, atol=1e-12)


def test_past_its_warmup_it_is_torchs_ema():
    """Once the horizon reaches 1 / (1 - decay), each update is torch's EMA at ``decay``."""
    decay, n = 0.9, 100
    assert decay_at(decay, n) == decay and decay_at(decay, 0) == 0.0
    avg, cur = [torch.randn(5)], [torch.randn(5)]
    ours = weight_average(nn.Linear(1, 1), decay).multi_avg_fn
    theirs = get_ema_multi_avg_fn(decay)
    mine, ref = [avg[0].clone()], [avg[0].clone()]
    ours(mine, cur, torch.tensor(n))
    theirs(ref, cur, torch.tensor(n))
    assert torch.allclose(mine[0], ref[0])


def test_horizon_grows_with_the_run():
    """The average spans about SHARE of the steps so far: 1 / (1 - d_n) = 1 + SHARE n."""
    for n in (1, 10, 300, 2_000):
        assert 1 / (1 - decay_at(0.9999, n)) == pytest.approx(1 + SHARE * n)
    assert weight_average(nn.Linear(1, 1), 0.0) is None


def test_trainer_evaluates_and_keeps_the_average(tmp_path):
    """With ema, the training weights are those of a run without it; the validation loss is
    the average's; best.safetensors holds the average; last.safetensors holds the training
    weights and the average; the model the run leaves is the best average."""
    model, summary, run = _fit(tmp_path, ema=0.5, lr=0.05)
    _, _, plain = _fit(tmp_path, name="plain", lr=0.05)
    last = load_checkpoint(run.checkpoints / "last.safetensors")
    best = load_checkpoint(run.checkpoints / "best.safetensors")
    trained, average = last.model_state["weight"], last.extra["average.weight"]
    assert torch.equal(trained, load_checkpoint(plain.checkpoints / "last.safetensors")
                       .model_state["weight"])
    assert last.metadata["averaged"] == 20
    assert not torch.allclose(trained, average)
    assert torch.equal(best.model_state["weight"], model.weight.detach())
    evals = [r for r in run.metrics() if "val_loss" in r]
    assert summary["best_step"] == min(evals, key=lambda r: r["val_loss"])["step"]
    task = Toy()
    with torch.no_grad():
        loss = float(torch.nn.functional.mse_loss(model(task.x), task.y))
    assert summary["val_loss"] == pytest.approx(loss)
    if summary["best_step"] == 20:
        assert torch.equal(model.weight.detach(), average)


class Crash(Exception):
    pass


def test_resumed_average_equals_uninterrupted(tmp_path, monkeypatch):
    """A run that crashed after its step-10 checkpoint, resumed, ends with the same average
    and scores, bit for bit."""
    _, whole, run = _fit(tmp_path, ema=0.8, lr=0.05)
    original = Trainer._after_step

    def crash_at_12(self, bar):
        if self.p.step == 12:
            raise Crash
        original(self, bar)

    monkeypatch.setattr(Trainer, "_after_step", crash_at_12)
    with pytest.raises(Crash):
        _fit(tmp_path, name="again", ema=0.8, lr=0.05)
    monkeypatch.setattr(Trainer, "_after_step", original)
    torch.manual_seed(0)
    settings = TrainSettings(steps=20, warmup=3, eval_every=5, log_every=2, checkpoint_every=5,
                             progress=False, ema=0.8, lr=0.05)
    (tmp_path / "again" / "config.json").write_text("{}")  # what a task writes first
    again = RunDir.create(tmp_path / "again", resume=True)
    resumed = Trainer(nn.Linear(3, 1), Toy(), settings, again).fit()
    a = load_checkpoint(run.checkpoints / "last.safetensors")
    b = load_checkpoint(again.checkpoints / "last.safetensors")
    assert torch.equal(a.extra["average.weight"], b.extra["average.weight"])
    assert resumed["val_loss"] == whole["val_loss"]


@pytest.mark.parametrize("ema", [1.0, -0.1, 2, True])
def test_bad_ema(ema):
    with pytest.raises(UserError, match="--ema must be in"):
        TrainSettings.from_dict({"steps": 5, "ema": ema})
