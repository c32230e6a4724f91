"""The Trainer against a plain torch loop, and its budgets, early stopping, non-finite stops."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.errors import UserError
from rnnkit.train.rundir import RunDir
from rnnkit.train.schedule import lr_factor, step_progress
from rnnkit.train.trainer import Trainer, TrainSettings


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass



class Toy:
    """Linear regression in batches of 8: a task small enough to replay by hand."""

    name, unit, monitor = "toy", "examples", "loss"

    def __init__(self, val_losses=None, nan_at=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 3, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(32, 1,
                                                                                  generator=g)
        self.val_losses, self.nan_at, self.calls = val_losses, nan_at, 0

    def batches_per_epoch(self):
        return 4

    def start_epoch(self, epoch):
        pass

    def batch(self, index):
        return self.x[index * 8:(index + 1) * 8], self.y[index * 8:(index + 1) * 8]

    def train_step(self, model, epoch, index):
        self.calls += 1
        x, y = self.batch(index)
        loss = F.mse_loss(model(x), y)
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return loss, 8

    def evaluate(self, model, split, full=True):
        if self.val_losses is not None and split == "val":
            return {"loss": self.val_losses.pop(0) if len(self.val_losses) > 1
                    else self.val_losses[0]}
        with torch.no_grad():
            return {"loss": float(F.mse_loss(model(self.x), self.y))}

    def state_tensors(self):
        return {}

    def load_state_tensors(self, tensors):
        pass

    def on_evaluate(self, model, step, run):
        pass


def _fit(tmp_path, task=None, name="run", **kw):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    settings = TrainSettings(**{"steps": 20, "warmup": 3, "eval_every": 5, "log_every": 2,
                                "checkpoint_every": 5, "progress": False, **kw})
    run = RunDir.create(tmp_path / name, resume=False)
    summary = Trainer(model, task or Toy(), settings, run).fit()
    return model, summary, run


@pytest.mark.parametrize("opt", ["adamw", "sgd"])
@pytest.mark.parametrize("clip_mode", ["norm", "value"])
def test_matches_a_plain_torch_loop(tmp_path, opt, clip_mode):
    """Same seed, same steps: the Trainer's weights equal a hand-written torch loop's, bit for
    bit (optimizer, warmup + cosine schedule, clipping)."""
    model, summary, run = _fit(tmp_path, optimizer=opt, clip=0.5, clip_mode=clip_mode,
                               lr=0.05)
    torch.manual_seed(0)
    ref = nn.Linear(3, 1)
    if opt == "sgd":
        o = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    else:
        o = torch.optim.AdamW(ref.parameters(), lr=0.05, weight_decay=0.01, fused=True)
    factor = lr_factor("cosine", 3, 0.1)
    task, norms = Toy(), []
    for step in range(20):
        for g in o.param_groups:
            g["lr"] = 0.05 * factor(step, step_progress(step, 3, 20))
        x, y = task.batch(step % 4)
        loss = F.mse_loss(ref(x), y)
        o.zero_grad()
        loss.backward()
        norms.append(float(torch.cat([p.grad.flatten() for p in ref.parameters()]).norm()))
        if clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        else:
            torch.nn.utils.clip_grad_value_(ref.parameters(), 0.5)
        o.step()
    assert torch.equal(model.weight, ref.weight) and torch.equal(model.bias, ref.bias)
    assert summary["status"] == "completed" and summary["steps"] == 20
    # each metrics line: the largest gradient norm before clipping since the line before
    logged = [r["grad_norm"] for r in run.metrics() if "loss" in r]
    assert logged == pytest.approx([max(norms[i:i + 2]) for i in range(0, 20, 2)], rel=1e-5)
    assert max(logged) > 0.5  # what clipping cut, still visible


def test_run_directory_contents(tmp_path):
    _, summary, run = _fit(tmp_path)
    rows = run.metrics()
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train_rows] == list(range(2, 21, 2))
    assert [r["step"] for r in val_rows] == [5, 10, 15, 20]
    on_disk = json.loads((run.path / "summary.json").read_text())
    assert on_disk == summary
    for key in ("task", "status", "seed", "device", "parameters", "steps", "train_seconds",
                "examples_per_second", "val_loss", "test_loss"):
        assert key in summary
    assert summary["parameters"] == 4
    for name in ("init", "last", "best"):
        assert (run.checkpoints / f"{name}.safetensors").is_file()
    assert (run.path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_and_best_checkpoint(tmp_path):
    """Validation improves twice then worsens: stops after `patience` bad evaluations and
    reports the best step."""
    task = Toy(val_losses=[3.0, 2.0, 2.5, 2.6, 2.7, 2.8])
    _, summary, run = _fit(tmp_path, task, patience=2, steps=100)
    assert summary["status"] == "early_stopped"
    assert summary["steps"] == 20  # evaluations at 5, 10, 15, 20: the 2nd bad one is at 20
    assert summary["best_step"] == 10
    from rnnkit.train.checkpoint import load_checkpoint

    assert load_checkpoint(run.checkpoints / "best.safetensors").metadata["step"] == 10


class Tied(Toy):
    """Validation error reaches 0 and stays there while the loss still moves."""

    monitor, tie_break = "error", "loss"

    def __init__(self, evals):
        super().__init__()
        self.evals = evals

    def evaluate(self, model, split, full=True):
        if split == "val" and self.evals:
            error, loss = self.evals.pop(0)
            return {"error": error, "loss": loss}
        return {"error": 0.0, "loss": 0.1}


def test_a_tie_in_the_monitored_metric_goes_to_the_lower_tie_break(tmp_path):
    task = Tied([(0.5, 1.0), (0.0, 0.5), (0.0, 0.2), (0.0, 0.4)])  # evaluations at 5 ... 20
    _, summary, _ = _fit(tmp_path, task)
    assert summary["best_step"] == 15  # not 10, the first 0 error: 15 has the lower loss
    _, summary, _ = _fit(tmp_path, Toy(val_losses=[3.0, 2.0, 2.0, 2.0]), name="no-tie")
    assert summary["best_step"] == 10  # without a tie-break the first of equals stays


def test_time_budget(tmp_path):
    """The clock stops a run planned in steps: status "budget"; a run planned in seconds
    alone that uses them up has completed."""
    _, summary, _ = _fit(tmp_path, name="a", steps=100, max_time=1e-9)
    assert summary["status"] == "budget" and summary["steps"] == 0
    _, summary, _ = _fit(tmp_path, name="b", steps=None, max_time=0.2)
    assert summary["status"] == "completed" and summary["steps"] > 0


def test_epoch_budget(tmp_path):
    _, summary, _ = _fit(tmp_path, steps=None, epochs=3)
    assert summary["status"] == "completed" and summary["steps"] == 12


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    from rnnkit.train.checkpoint import load_checkpoint

    _, summary, run = _fit(tmp_path, Toy(nan_at=13))
    assert summary["status"] == "nonfinite" and summary["steps"] == 12
    assert "nan" in summary["error"] and "step 13" in summary["error"]
    last = load_checkpoint(run.checkpoints / "last.safetensors")
    assert last.metadata["step"] == 10  # the checkpoint before the failure, untouched
    assert all(math.isfinite(float(v.abs().sum())) for v in last.model_state.values())
    assert run.metrics()[-1] == {"step": 13, "nonfinite": "the loss became nan"}


def test_seed_makes_runs_repeatable(tmp_path):
    a, _, _ = _fit(tmp_path, name="a", seed=3)
    b, _, _ = _fit(tmp_path, name="b", seed=3)
    assert torch.equal(a.weight, b.weight)


@pytest.mark.parametrize("kw, words", [
    ({"optimizer": "rmsprop"}, "unknown optimizer"),
    ({"steps": None}, "no training budget"),
    ({"lr": -1.0}, "--lr"),
    ({"steps": 0}, "--steps"),
])
def test_bad_settings(kw, words):
    with pytest.raises(UserError, match=words):
        TrainSettings.from_dict({"steps": 5, **kw})


def test_schedule_shape():
    f = lr_factor("cosine", warmup=4, min_ratio=0.0)
    assert [f(i, 0.0) for i in range(4)] == [0.2, 0.4, 0.6, 0.8]
    p = [step_progress(s, 4, 104) for s in (4, 54, 104)]
    assert p == [0.0, 0.5, 1.0]
    assert f(4, 0.0) == 1.0 and f(54, 0.5) == pytest.approx(0.5) and f(104, 1.0) == 0.0
    assert lr_factor("constant", 0)(50, 0.5) == 1.0


def test_time_budget_runs_the_schedule_by_the_clock(tmp_path):
    """With --max-time alone, the cosine follows the seconds spent: the last rate is near
    the floor although no step count was known."""
    _, _, run = _fit(tmp_path, steps=None, max_time=1.0, warmup=0, log_every=1,
                     min_lr_ratio=0.0, eval_every=10**9, checkpoint_every=10**9)
    lrs = [r["lr"] for r in run.metrics() if "lr" in r]
    assert len(lrs) > 3 and lrs[0] > 0.5 * 2e-3 and lrs[-1] < 0.2 * 2e-3
    assert lrs == sorted(lrs, reverse=True)
